// ovsplanectl install: copy the executables into the CNI bin dir and write a validated conflist.
import { basename } from "node:path";
import { readFileSync } from "node:fs";
import type { Argv } from "yargs";
import { install } from "../installer.ts";
import { guard, last } from "../common.ts";

/** Options of the generated conflist, from flags. */
interface ConfFlags {
  name: string;
  cniVersion: string;
  bridge?: string;
  datapathType?: string;
  ovsdbSocket?: string;
  segment?: number;
  podCidr?: string;
  localIp?: string;
  peer?: string[];
  mtu?: number;
  ipamType: string;
  dataDir?: string;
}

/** A conflist generated from flags (undefined when no pod CIDR is given). */
export function conflistFromFlags(f: ConfFlags): Record<string, unknown> | undefined {
  if (!f.podCidr) return undefined;
  const plugin: Record<string, unknown> = { type: "ovsplane" };
  if (f.bridge) plugin.bridge = f.bridge;
  if (f.datapathType) plugin.datapathType = f.datapathType;
  if (f.ovsdbSocket) plugin.ovsdbSocket = f.ovsdbSocket;
  if (f.segment !== undefined) plugin.segment = f.segment;
  if (f.localIp) plugin.tunnel = { localIP: f.localIp };
  if (f.mtu !== undefined) plugin.mtu = f.mtu;
  plugin.peers = (f.peer ?? []).map((p) => {
    const [nodeIP, podCIDR] = p.split("=");
    if (!nodeIP || !podCIDR) throw new Error(`--peer ${JSON.stringify(p)}: expected NODE_IP=POD_CIDR`);
    return { nodeIP, podCIDR };
  });
  const ipam: Record<string, unknown> = { type: f.ipamType, ranges: [[{ subnet: f.podCidr }]], routes: [{ dst: "0.0.0.0/0" }] };
  if (f.dataDir) ipam.dataDir = f.dataDir;
  plugin.ipam = ipam;
  return { cniVersion: f.cniVersion, name: f.name, plugins: [plugin] };
}

/** Fills this node's facts (pod range, underlay address) into every ovsplane plugin of a conflist. */
export function applyNodeFacts(c: Record<string, unknown>, facts: { podCidr?: string; localIp?: string }): Record<string, unknown> {
  const plugins = (Array.isArray(c.plugins) ? c.plugins : []) as Record<string, any>[];
  for (const p of plugins) {
    if (p.type !== "ovsplane") continue;
    if (facts.localIp) p.tunnel = { ...(p.tunnel ?? {}), localIP: facts.localIp };
    if (facts.podCidr) p.ipam = { ...(p.ipam ?? {}), ranges: [[{ subnet: facts.podCidr }]] };
  }
  return c;
}

/** The executable to install: this one when it is a compiled ovsplane, else --source. */
function defaultSource(): string | undefined {
  const exe = process.execPath;
  return /^(node|bun)$/.test(basename(exe)) ? undefined : exe;
}

function builder(y: Argv<object>) {
  return y
    .option("bin-dir", { type: "string", coerce: last, default: "/opt/cni/bin", describe: "where the runtime finds CNI plugins" })
    .option("conf-dir", { type: "string", coerce: last, default: "/etc/cni/net.d", describe: "where the runtime finds conflists" })
    .option("source", { type: "string", coerce: last, describe: "the ovsplane executable to copy (default: this executable)" })
    .option("conf-file", { type: "string", coerce: last, describe: "install this conflist (validated) instead of generating one" })
    .option("conflist-name", { type: "string", coerce: last, default: "10-ovsplane.conflist", describe: "file name of the conflist" })
    .option("name", { type: "string", coerce: last, default: "ovsplane", describe: "network name" })
    .option("cni-version", { type: "string", coerce: last, default: "1.0.0", describe: "cniVersion of the generated conflist" })
    .option("pod-cidr", { type: "string", coerce: last, describe: "this node's pod range (generates the conflist, or fills --conf-file's)" })
    .option("pod-cidr-file", { type: "string", coerce: last, describe: "read --pod-cidr from this file (per-node, e.g. written by provisioning)" })
    .option("segment", { type: "number", describe: "default segment (VXLAN VNI)" })
    .option("bridge", { type: "string", coerce: last, describe: "OVS integration bridge" })
    .option("datapath-type", { type: "string", coerce: last, choices: ["system", "netdev"], describe: "OVS datapath" })
    .option("ovsdb-socket", { type: "string", coerce: last, describe: "OVSDB endpoint (unix:PATH or tcp:HOST:PORT)" })
    .option("local-ip", { type: "string", coerce: last, describe: "this node's underlay address (tunnel.localIP; fills --conf-file's too)" })
    .option("peer", { type: "string", array: true, describe: "a static peer as NODE_IP=POD_CIDR (repeatable)" })
    .option("mtu", { type: "number", describe: "pod MTU" })
    .option("ipam-type", { type: "string", coerce: last, default: "ovsplane-ipam", describe: "IPAM plugin" })
    .option("data-dir", { type: "string", coerce: last, describe: "IPAM lease directory" })
    .option("force", { type: "boolean", default: false, describe: "overwrite a conflist ovsplanectl did not write" })
    .option("dry-run", { type: "boolean", default: false, describe: "show what would be done, change nothing" })
    .example("$0 install --pod-cidr 10.244.1.0/24 --local-ip 198.18.0.1 --peer 198.18.0.2=10.244.2.0/24", "install with a generated conflist")
    .example("$0 install --conf-file my.conflist --bin-dir /host/opt/cni/bin --conf-dir /host/etc/cni/net.d", "install a given conflist")
    .example("$0 install --dry-run", "show what would change");
}

/** The `install` command (a yargs command module). */
export const installCommand = {
  command: "install",
  describe: "install the CNI executables into --bin-dir and write a conflist into --conf-dir",
  builder,
  handler: (a: Awaited<ReturnType<typeof builder>["argv"]>) =>
    guard(() => {
      const source = a.source ?? defaultSource();
      if (!source) throw new Error("not running as a compiled ovsplane executable: give --source");
      if (a.podCidrFile) a.podCidr = readFileSync(a.podCidrFile, "utf8").trim();
      const conflist = a.confFile
        ? applyNodeFacts(JSON.parse(readFileSync(a.confFile, "utf8")) as Record<string, unknown>, { podCidr: a.podCidr, localIp: a.localIp })
        : conflistFromFlags(a as unknown as ConfFlags);
      const actions = install({ binDir: a.binDir, confDir: a.confDir, source, conflist, conflistName: a.conflistName, force: a.force, dryRun: a.dryRun });
      if (!actions.length) console.log("nothing to do: already installed");
      for (const x of actions) console.log(`${a.dryRun ? "would " : ""}${x.what}`);
      if (!conflist) console.log("no conflist written (give --pod-cidr or --conf-file)");
    }),
};
