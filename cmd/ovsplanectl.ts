// ovsplanectl: the operator CLI (an entry point of its own in the executable, so the CNI plugins never load yargs).
import { main } from "../lib/ctl/main.ts";
import { configure, settingsFromEnv } from "../lib/settings.ts";

configure(settingsFromEnv(process.env));
void main(process.argv.slice(2));
