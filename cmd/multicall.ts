// The one shipped executable: acts as ovsplane, ovsplane-ipam, ovsplanectl or ovsplane-agent by the name it was invoked as.
import { basename } from "node:path";

/**
 * The agent's bundle, embedded in the executable as an asset (`make bin`), not compiled into it: its
 * Kubernetes client would otherwise be loaded (as bytecode) by every CNI call, ~10 ms each.
 */
function agentBundle(): string {
  const files = (globalThis as { Bun?: { embeddedFiles?: readonly { name?: string }[] } }).Bun?.embeddedFiles ?? [];
  const bundle = files.find((f) => f.name === "ovsplane-agent.js");
  if (!bundle) throw new Error("this executable has no embedded ovsplane-agent bundle (build it with make bin)");
  return `${import.meta.dirname}/${bundle.name}`;
}

const name = basename(process.argv0 || process.argv[1] || "");
if (name.startsWith("ovsplane-ipam")) void import("./ovsplane-ipam.ts");
else if (name.startsWith("ovsplanectl")) void import("./ovsplanectl.ts");
else if (name.startsWith("ovsplane-agent")) void import(agentBundle());
else void import("./ovsplane.ts");
