// The one shipped executable: acts as ovsplane, ovsplane-ipam, ovsplanectl or ovsplane-agent by the name it was invoked as.
import { basename } from "node:path";
import { STDOUT, writeAll } from "../lib/cni/stdio.ts";
import { versionAnswer } from "../lib/cni/version.ts";

/** The programs of the executable, each an entry point of its own (`make bin`). */
type Program = "ovsplane" | "ovsplane-ipam" | "ovsplanectl" | "ovsplane-agent";

/**
 * Each program is an entry point of the compiled executable with bytecode of its own, so a call loads
 * only its program: Bun loads an entry's whole bytecode at start-up, used or not (measured: ~4.5 ms for
 * the CNI plugin's, more with the CLI's yargs or the agent's Kubernetes client in it). Imported by a
 * path the bundler does not follow (a static import would compile it into this entry).
 */
function load(program: Program): void {
  void import(`${import.meta.dirname}/${program}.js`);
}

const name = basename(process.argv0 || process.argv[1] || "");
const program: Program = name.startsWith("ovsplane-ipam") ? "ovsplane-ipam"
  : name.startsWith("ovsplanectl") ? "ovsplanectl"
  : name.startsWith("ovsplane-agent") ? "ovsplane-agent"
  : "ovsplane";
// A CNI VERSION call, the runtime's probe of every plugin, is answered here without loading the plugin.
if ((program === "ovsplane" || program === "ovsplane-ipam") && process.env.CNI_COMMAND === "VERSION") writeAll(STDOUT, versionAnswer());
else {
  // A CNI call or a CLI command runs its code once: the JIT tiers up 10x later, since compiling that code cost
  // more CPU than interpreting it (an ADD's CPU ~42 -> ~31 ms). The agent, long-lived, keeps the normal policy
  // (set for the whole executable at build time, it grew the agent's peak RSS by ~12 MiB).
  if (program !== "ovsplane-agent") (globalThis as { Bun?: { unsafe?: { setJITPolicy?(scale: number): void } } }).Bun?.unsafe?.setJITPolicy?.(10);
  load(program);
}
