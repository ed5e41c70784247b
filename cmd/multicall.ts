// The one shipped executable: acts as ovsplane, ovsplane-ipam, ovsplanectl or ovsplane-agent by the name it was invoked as.
import { basename } from "node:path";

/**
 * The agent is a second entry point of the compiled executable (`make bin`), with bytecode of its own, so
 * only this name loads it: its Kubernetes client costs the CNI calls nothing. Imported by a path the
 * bundler does not follow (a static import would compile the agent into the CNI calls' module graph).
 */
function agentEntry(): string {
  return `${import.meta.dirname}/ovsplane-agent.js`;
}

const name = basename(process.argv0 || process.argv[1] || "");
if (name.startsWith("ovsplane-ipam")) void import("./ovsplane-ipam.ts");
else if (name.startsWith("ovsplanectl")) void import("./ovsplanectl.ts");
else if (name.startsWith("ovsplane-agent")) void import(agentEntry());
else void import("./ovsplane.ts");
