// ovsplane-agent: the node agent (Kubernetes watches, conflist and segments, node-wide flows and host state); loaded only under its name.
import { main } from "../lib/agent/main.ts";
import { configure, settingsFromEnv } from "../lib/settings.ts";

type BunUnsafe = { gcAggressionLevel?(level: number): number; setJITPolicy?(scale: number): void };
const unsafe = (globalThis as { Bun?: { unsafe?: BunUnsafe } }).Bun?.unsafe;
// A long-lived process: Bun's collector runs more often, so the heap of a big sync is reused, not grown (peak RSS).
unsafe?.gcAggressionLevel?.(2);
// The executable starts with the JIT's tier-up held back for the CNI calls (Makefile); the agent's hot paths want it.
unsafe?.setJITPolicy?.(1);
configure(settingsFromEnv(process.env));
void main(process.argv.slice(2), process.env);
