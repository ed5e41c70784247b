// ovsplane-agent: the node agent (Kubernetes watches, conflist and segments, node-wide flows and host state); loaded only under its name.
import { main } from "../lib/agent/main.ts";
import { configure, settingsFromEnv } from "../lib/settings.ts";

// A long-lived process: Bun's collector runs more often, so the heap of a big sync is reused, not grown (peak RSS).
(globalThis as { Bun?: { unsafe?: { gcAggressionLevel?(level: number): number } } }).Bun?.unsafe?.gcAggressionLevel?.(2);
configure(settingsFromEnv(process.env));
void main(process.argv.slice(2), process.env);
