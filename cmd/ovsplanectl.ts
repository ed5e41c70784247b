// ovsplanectl: the operator CLI (loaded lazily so the CNI plugins never pay for yargs).
import { main } from "../lib/ctl/main.ts";
import { configure, settingsFromEnv } from "../lib/settings.ts";

configure(settingsFromEnv(process.env));
void main(process.argv.slice(2));
