// ovsplanectl flows: the bridge's flows grouped by what they belong to (node, segment, peer, pod, gateway, route, global), with counters.
import type { Argv } from "yargs";
import type { FlowEntry } from "../../ovs/openflow.ts";
import { hex, renderActions, renderMatch } from "../../ovs/flow-text.ts";
import { Table } from "../../dataplane/pipeline.ts";
import { bridgeKey, flowOwner, loadNetworks, nodeFlags, OWNER_KINDS, readBridges, readPolicyReport, selectNetworks, type FlowOwner, type OwnerContext } from "../node-state.ts";
import { guardAsync, report, paint, table, type Out } from "../output.ts";

/** One flow for people and scripts. */
export interface FlowRow {
  table: number;
  /** The pipeline's name of the table (Classifier, SpoofGuard, ...), when it is one of ours. */
  tableName?: string;
  priority: number;
  cookie: string;
  match: string;
  actions: string;
  packets: number;
  bytes: number;
}

/** The flows of one owner, with their summed counters. */
export interface FlowGroup {
  owner: FlowOwner;
  flows: FlowRow[];
  packets: number;
  bytes: number;
}

/** Which groups to keep; every given filter must match. */
export interface GroupFilter {
  /** "namespace/name", a pod name, a container ID (or its prefix) or the host veth. */
  pod?: string;
  segment?: number;
  /** A peer's underlay IPv4 (its acceptance and every route through it). */
  peer?: string;
  /** Only this network's flows and the bridge-wide ones. */
  network?: string;
}

const TABLE_NAMES = new Map<number, string>(Object.entries(Table).map(([k, v]) => [v, k]));

/** A flow entry as a row. */
export function flowRow(e: FlowEntry): FlowRow {
  const r: FlowRow = {
    table: e.flow.table,
    priority: e.flow.priority,
    cookie: hex(e.flow.cookie),
    match: renderMatch(e.flow.match).join(",") || "*",
    actions: renderActions(e.flow.actions),
    packets: Number(e.stats.packets),
    bytes: Number(e.stats.bytes),
  };
  const name = TABLE_NAMES.get(e.flow.table);
  if (name) r.tableName = name;
  return r;
}

/** True when an owner passes the filter. */
export function ownerMatches(o: FlowOwner, f: GroupFilter): boolean {
  if (f.network !== undefined && o.network !== undefined && o.network !== f.network) return false;
  if (f.segment !== undefined && o.segment !== f.segment) return false;
  if (f.peer !== undefined && o.peer !== f.peer) return false;
  if (f.pod !== undefined) {
    const a = o.attachment;
    if (o.kind !== "pod" || !a) return false;
    const names = [`${a.podNamespace}/${a.podName}`, a.podName, o.port];
    if (!names.includes(f.pod) && !a.containerID.startsWith(f.pod)) return false;
  }
  return true;
}

/** Groups flows by owner (named through the ports' tags and the networks), filtered, in a stable order (pure). */
export function groupFlows(entries: readonly FlowEntry[], ctx: OwnerContext, filter: GroupFilter = {}): FlowGroup[] {
  const groups = new Map<string, FlowGroup>();
  for (const e of entries) {
    const owner = flowOwner(e.flow.cookie, ctx);
    if (!ownerMatches(owner, filter)) continue;
    let g = groups.get(owner.key);
    if (!g) groups.set(owner.key, (g = { owner, flows: [], packets: 0, bytes: 0 }));
    const row = flowRow(e);
    g.flows.push(row);
    g.packets += row.packets;
    g.bytes += row.bytes;
  }
  const rank = (o: FlowOwner) => OWNER_KINDS.indexOf(o.kind);
  const out = [...groups.values()].sort((a, b) => rank(a.owner) - rank(b.owner) || (a.owner.segment ?? 0) - (b.owner.segment ?? 0) || a.owner.name.localeCompare(b.owner.name));
  for (const g of out) g.flows.sort((a, b) => a.table - b.table || b.priority - a.priority || a.match.localeCompare(b.match));
  return out;
}

/** What `flows --json` prints per bridge. */
export interface BridgeFlows {
  bridge: string;
  ovsdbSocket: string;
  error?: string;
  groups: FlowGroup[];
}

/** Reads each selected bridge's flows and groups them. */
export async function collectFlows(f: GroupFilter & { confDir: string }): Promise<BridgeFlows[]> {
  const networks = selectNetworks(loadNetworks(f.confDir).networks, f.network);
  const bridges = await readBridges(networks);
  const out: BridgeFlows[] = [];
  for (const n of networks) {
    const b = bridges.get(bridgeKey(n.cfg))!;
    if (out.some((x) => x.bridge === b.bridge && x.ovsdbSocket === n.cfg.ovsdbSocket)) continue;
    const r: BridgeFlows = { bridge: b.bridge, ovsdbSocket: n.cfg.ovsdbSocket, groups: groupFlows(b.flows, { ports: b.ports, networks, policies: readPolicyReport(n.cfg)?.cookies ?? {} }, f) };
    if (!b.vswitchd.ok) r.error = `ovs-vswitchd does not answer: ${b.vswitchd.error}`;
    out.push(r);
  }
  return out;
}

const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? "" : "s"}`;

/** Prints grouped flows: a heading per owner, then its flows with their counters. */
export function printFlows(out: Out, bridges: readonly BridgeFlows[]): void {
  for (const b of bridges) {
    out.line(`bridge ${b.bridge}`);
    if (b.error) out.line(paint(out, "bad", `  ${b.error}`));
    if (!b.groups.length && !b.error) out.line("  no flows match");
    for (const g of b.groups) {
      out.line();
      out.line(`${g.owner.name}  (${plural(g.flows.length, "flow")}, ${plural(g.packets, "packet")})`);
      table(
        out,
        ["  TABLE", "PRIO", "PACKETS", "MATCH", "ACTIONS"],
        g.flows.map((f) => [`  ${f.table}${f.tableName ? ` ${f.tableName}` : ""}`, String(f.priority), String(f.packets), f.match, f.actions]),
      );
    }
  }
}

function builder(y: Argv<object>) {
  return nodeFlags(y)
    .option("pod", { type: "string", describe: "only this pod's flows (namespace/name, name, container ID prefix or host veth)" })
    .option("segment", { type: "number", describe: "only flows of this segment (its flow, its pods, its global flows)" })
    .option("peer", { type: "string", describe: "only flows of this peer (its tunnel acceptance and the routes through it)" })
    .example("$0 flows", "every ovsplane flow on the bridge, grouped by owner")
    .example("$0 flows --pod default/web-1", "one pod's flows with their packet counters")
    .example("$0 flows --segment 100 --json", "one segment's flows as JSON")
    .example("$0 flows --peer 198.18.0.2", "the flows that accept and route to one peer");
}

/** The `flows` command. */
export const flowsCommand = {
  command: "flows",
  describe: "show the bridge's ovsplane flows grouped by what they belong to, with packet counters (changes nothing)",
  builder,
  handler: (a: Awaited<ReturnType<typeof builder>["argv"]>) =>
    guardAsync(async () => {
      const filter: GroupFilter & { confDir: string } = { confDir: a.confDir };
      for (const k of ["pod", "segment", "peer", "network"] as const) if (a[k] !== undefined) Object.assign(filter, { [k]: a[k] });
      const bridges = await collectFlows(filter);
      report(a.json, { bridges }, (out) => printFlows(out, bridges));
      return bridges.some((b) => b.error) ? 1 : 0;
    }),
};
