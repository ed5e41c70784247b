// ovsplanectl gc: removes the residue doctor finds, through the CNI GC of each network (valid = pods with port and veth).
import type { Argv, CommandModule } from "yargs";
import type { CniRequest, NetConf } from "../../cni/types.ts";
import { gc } from "../../plugin/gc.ts";
import { liveAttachments, isClean, type Residue } from "../doctor/residue.ts";
import { nodeFlags, type NodeFlags } from "../node-state.ts";
import { guardAsync, json, outTo, type Out } from "../output.ts";
import { examine, type NetworkFacts } from "./doctor.ts";

/** Default CNI_PATH for an exec'd IPAM (ovsplane-ipam runs in-process). */
export const DEFAULT_CNI_PATH = "/opt/cni/bin";

/** The CNI GC request doctor's view implies: every live attachment of the network is valid, the rest is residue. */
export function gcRequest(n: NetworkFacts, veths: Parameters<typeof liveAttachments>[2], cniPath: readonly string[]): CniRequest {
  const valid = liveAttachments(n.net.cfg.name, n.bridge.ports, veths);
  const conf: NetConf = { ...n.net.conf, cniVersion: "1.1.0", "cni.dev/valid-attachments": valid };
  return { command: "GC", containerID: "", netns: "", ifname: "", args: {}, rawArgs: "", path: [...cniPath], stdin: JSON.stringify(conf), conf };
}

/** Human lines of what a residue list holds. */
export function residueLines(r: Residue): string[] {
  return [
    ...r.ports.map((p) => `port ${p.name}${p.attachment ? ` (${p.attachment})` : ""}: ${p.why}`),
    ...r.veths.map((v) => `veth ${v.ifname} (${v.attachment})`),
    ...r.leases.map((l) => `lease ${l.ip}${l.owner ? ` of ${l.owner}` : ""}`),
    ...r.flows.map((f) => `${f.count} pod flow(s) of id ${f.id}`),
  ];
}

/** Options of runGc. */
export interface GcOptions {
  confDir: string;
  network?: string;
  dryRun: boolean;
  json: boolean;
  cniPath: string[];
}

/** Finds the residue, prints it, and (unless dry-run) removes it; returns the exit code. */
export async function runGc(o: GcOptions, out: Out = outTo()): Promise<number> {
  const facts = await examine(o.confDir, o.network);
  const report: { network: string; residue: Residue; removed: boolean; error?: string }[] = [];
  for (const n of facts.networks) {
    const entry: (typeof report)[number] = { network: n.net.cfg.name, residue: n.residue, removed: false };
    report.push(entry);
    if (o.dryRun || isClean(n.residue)) continue;
    if (!n.bridge.ovsdb.ok) {
      entry.error = `OVSDB does not answer: ${n.bridge.ovsdb.error ?? ""}`;
      continue;
    }
    try {
      await gc(gcRequest(n, facts.veths, o.cniPath));
      entry.removed = true;
    } catch (e) {
      entry.error = e instanceof Error ? e.message : String(e);
    }
  }
  if (o.json) json(out, { dryRun: o.dryRun, networks: report });
  else {
    for (const r of report) {
      const lines = residueLines(r.residue);
      if (!lines.length) out.line(`${r.network}: no residue`);
      else out.line(`${r.network}: ${o.dryRun ? "would remove" : r.removed ? "removed" : "could not remove"}:`);
      for (const l of lines) out.line(`  ${l}`);
      if (r.error) out.line(`  error: ${r.error}`);
    }
  }
  return report.some((r) => r.error) ? 1 : 0;
}

/** The `gc` command. */
export const gcCommand: CommandModule<object, NodeFlags & { "dry-run": boolean; "cni-path": string }> = {
  command: "gc",
  describe: "remove residue (ports without veth, veths without port, stray leases, orphan pod flows) via CNI GC",
  builder: (y: Argv) =>
    nodeFlags(y)
      .option("dry-run", { type: "boolean", default: false, describe: "only show what would be removed" })
      .option("cni-path", { type: "string", default: DEFAULT_CNI_PATH, describe: "where an exec'd IPAM plugin is found (':'-separated)" })
      .example("$0 gc --dry-run", "what would be removed") as unknown as Argv<NodeFlags & { "dry-run": boolean; "cni-path": string }>,
  handler: (a) =>
    guardAsync(() =>
      runGc({ confDir: a.confDir, ...(a.network ? { network: a.network } : {}), dryRun: !!a["dry-run"], json: !!a.json, cniPath: String(a["cni-path"]).split(":").filter(Boolean) }),
    ),
};
