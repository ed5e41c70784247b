// ovsplane-agent: the node agent (Kubernetes watches, conflist and segments, node-wide flows and host state); loaded only under its name.
import { main } from "../lib/agent/main.ts";
import { configure, settingsFromEnv } from "../lib/settings.ts";

configure(settingsFromEnv(process.env));
void main(process.argv.slice(2), process.env);
