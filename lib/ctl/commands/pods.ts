// ovsplanectl pods: one row per pod attachment on the node, with whether its flows and its lease are all there.
import type { Argv } from "yargs";
import { ipv4Of, PortRole, Tag } from "../../dataplane/attachment.ts";
import {
  bridgeKey, leaseOf, loadNetworks, nodeFlags, podFlowState, readBridges, readLeases, selectNetworks, sharedPort,
  type BridgeState, type NetworkLeases, type NodeFlags,
} from "../node-state.ts";
import { guardAsync, report, mark, table, type Out } from "../output.ts";

/** One pod attachment as ovsplanectl reports it. */
export interface PodRow {
  network: string;
  namespace?: string;
  pod?: string;
  containerID: string;
  ifname: string;
  ip?: string;
  mac?: string;
  segment?: number;
  /** The host end of the veth (the OVS port's name). */
  hostVeth: string;
  ofport?: number;
  flows: { ok: boolean; want: number; have: number; missing: string[]; unexpected: string[] };
  /** ok null: the network's leases could not be read (another IPAM, or not in the conf dir). */
  lease: { ok: boolean | null; file?: string; error?: string };
  /** Everything wrong with the attachment, in words (empty when healthy). */
  problems: string[];
}

/** The rows of one bridge's pod ports (of the given networks, or all), checked against its flows and the leases (pure). */
export function podRows(b: BridgeState, leases: ReadonlyMap<string, NetworkLeases>, networks?: ReadonlySet<string>): PodRow[] {
  const gw = sharedPort(b, PortRole.Gateway)?.ofport;
  const rows: PodRow[] = [];
  for (const p of b.ports) {
    if (networks && !networks.has(p.network ?? "")) continue;
    const a = p.attachment;
    const flows = podFlowState(p, gw, b.bridge, b.flows);
    const row: PodRow = {
      network: p.network ?? "",
      containerID: a?.containerID ?? p.externalIds[Tag.ContainerID] ?? "",
      ifname: a?.ifname ?? p.externalIds[Tag.Ifname] ?? "",
      hostVeth: p.name,
      flows,
      lease: { ok: null },
      problems: [],
    };
    if (p.ofport !== undefined) row.ofport = p.ofport;
    if (a) {
      Object.assign(row, { mac: a.mac, segment: a.segment });
      const ip = ipv4Of(a);
      if (ip) row.ip = ip;
      if (a.podNamespace) row.namespace = a.podNamespace;
      if (a.podName) row.pod = a.podName;
    }
    if (p.tagError) row.problems.push(p.tagError);
    if (p.ofport === undefined || p.ofport <= 0) row.problems.push("no OpenFlow port (ovs-vswitchd has not attached it)");
    if (!b.vswitchd.ok) row.problems.push("flows unknown: ovs-vswitchd does not answer");
    else if (!flows.ok) row.problems.push(`flows: ${flows.missing.length} missing, ${flows.unexpected.length} unexpected of ${flows.want}`);
    const nl = leases.get(row.network);
    if (!nl) row.lease.error = "network not in the conf dir";
    else if (nl.error) row.lease.error = nl.error;
    else if (a) {
      const l = leaseOf(a, nl.leases);
      row.lease.ok = !!l;
      if (l) row.lease.file = l.path;
      else row.problems.push(`no lease for ${row.ip ?? "its address"} in ${nl.dir}`);
    }
    rows.push(row);
  }
  return rows.sort((x, y) => `${x.namespace}/${x.pod}/${x.containerID}`.localeCompare(`${y.namespace}/${y.pod}/${y.containerID}`));
}

/** Reads the node and returns the pod rows of the selected networks, with the bridges read. */
export async function collectPods(f: Pick<NodeFlags, "confDir" | "network">): Promise<{ rows: PodRow[]; bridges: BridgeState[] }> {
  const networks = selectNetworks(loadNetworks(f.confDir).networks, f.network);
  const bridges = await readBridges(networks);
  const leases = new Map<string, NetworkLeases>();
  for (const n of networks) leases.set(n.cfg.name, await readLeases(n));
  const only = f.network === undefined ? undefined : new Set([f.network]);
  const seen = new Set<string>();
  const rows: PodRow[] = [];
  for (const n of networks) {
    if (seen.has(bridgeKey(n.cfg))) continue;
    seen.add(bridgeKey(n.cfg));
    rows.push(...podRows(bridges.get(bridgeKey(n.cfg))!, leases, only));
  }
  return { rows, bridges: [...bridges.values()] };
}

function flowCell(out: Out, f: PodRow["flows"]): string {
  if (f.ok) return mark(out, true, `ok ${f.have}/${f.want}`);
  if (f.missing.length) return mark(out, false, "", `MISSING ${f.want - f.missing.length}/${f.want}`);
  return mark(out, false, "", `WRONG +${f.unexpected.length}`);
}

/** Prints pod rows as a table, then each row's problems. */
export function printPods(out: Out, rows: readonly PodRow[]): void {
  if (!rows.length) return out.line("no pods attached");
  table(
    out,
    ["POD", "CONTAINER", "IFNAME", "IP", "MAC", "SEGMENT", "VETH", "OFPORT", "FLOWS", "LEASE"],
    rows.map((r) => [
      r.pod ? `${r.namespace ?? "?"}/${r.pod}` : "-",
      r.containerID.slice(0, 12),
      r.ifname,
      r.ip ?? "-",
      r.mac ?? "-",
      String(r.segment ?? "-"),
      r.hostVeth,
      String(r.ofport ?? "-"),
      flowCell(out, r.flows),
      r.lease.ok === null ? "?" : mark(out, r.lease.ok, "ok", "MISSING"),
    ]),
  );
  for (const r of rows) for (const p of r.problems) out.line(`${r.pod ? `${r.namespace}/${r.pod}` : r.containerID} (${r.ifname}): ${p}`);
}

function builder(y: Argv<object>) {
  return nodeFlags(y)
    .example("$0 pods", "every pod attachment on this node, checked")
    .example("$0 pods --network podnet --json", "one network's pods as JSON");
}

/** The `pods` command. */
export const podsCommand = {
  command: "pods",
  describe: "list the pod attachments on this node with their flows and leases (changes nothing)",
  builder,
  handler: (a: Awaited<ReturnType<typeof builder>["argv"]>) =>
    guardAsync(async () => {
      const { rows } = await collectPods(a);
      report(a.json, { pods: rows }, (out) => printPods(out, rows));
    }),
};
