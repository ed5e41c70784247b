// The one shipped executable: acts as ovsplane, ovsplane-ipam or ovsplanectl by the name it was invoked as.
import { basename } from "node:path";

const name = basename(process.argv0 || process.argv[1] || "");
if (name.startsWith("ovsplane-ipam")) void import("./ovsplane-ipam.ts");
else if (name.startsWith("ovsplanectl")) void import("./ovsplanectl.ts");
else if (name.startsWith("ovsplane-agent")) void import("./ovsplane-agent.ts");
else void import("./ovsplane.ts");
