// Pure explanation of a parsed ofproto/trace: each step in the pipeline's words, and the packet's verdict.
import { CookieKind, parseCookie, PolicyPriority, Priority, Table } from "../../dataplane/pipeline.ts";
import type { ParsedTrace, TraceStep } from "./parse.ts";
import { cookieOwner, podOnPort, portName, tableName, TABLES, type TraceContext } from "./names.ts";

/** One step, explained. */
export interface ExplainedStep {
  /** 0 for the first pass, 1.. for each conntrack resume. */
  pass: number;
  /** Set for a step on another bridge than the pipeline's (the underlay bridge a tunnel packet leaves through). */
  bridge?: string;
  table: number;
  tableName: string;
  purpose: string;
  /** Who owns the matched flow (from its cookie), when it matched one. */
  owner?: string;
  match?: string;
  priority?: number;
  actions: string[];
  /** What happened here, in words. */
  says: string;
}

/** Where the packet ended up. */
export type Verdict =
  | { kind: "delivered"; pod: string; port: number }
  | { kind: "tunnel"; peer: string; vni: number; podCIDR?: string; note?: string }
  | { kind: "node"; port: number }
  | { kind: "returned"; port?: number }
  | { kind: "output"; port: number }
  | { kind: "dropped"; table: number; tableName: string; reason: string };

/** A whole explanation: the steps, the verdict and the verdict in one sentence. */
export interface Explanation {
  steps: ExplainedStep[];
  /** conntrack resumes: the ct_state each was traced with. */
  resumes: { pass: number; ctState: string }[];
  verdict: Verdict;
  summary: string;
  datapathActions: string;
}

/** Register and tunnel state as the packet walks the steps. */
interface State {
  regs: Map<number, number>;
  tunId?: number;
  tunDst?: string;
}

const num = (v: string | undefined): number | undefined => (v === undefined || v === "" ? undefined : Number(BigInt(v)));
const REG_FIELD = /NXM_NX_REG(\d+)\[[^\]]*\]/;

/** Applies one action (and OVS's notes) to the state. */
function apply(s: State, action: string, notes: readonly string[]): void {
  let m = /^load:(0x[0-9a-f]+|\d+)->NXM_NX_REG(\d+)\[/i.exec(action);
  if (m) s.regs.set(Number(m[2]), Number(BigInt(m[1]!)));
  m = /^set_field:([\d.]+)->tun_dst$/.exec(action);
  if (m) s.tunDst = m[1]!;
  m = /^move:(\S+)->(\S+)$/.exec(action);
  if (m) {
    const dst = m[2]!;
    const note = notes.map((n) => /^(\S+) is now (0x[0-9a-f]+|\d+)/i.exec(n)).find((x) => x && x[1] === dst);
    const src = REG_FIELD.exec(m[1]!);
    const value = note ? Number(BigInt(note[2]!)) : src ? (s.regs.get(Number(src[1])) ?? 0) : undefined;
    const dreg = REG_FIELD.exec(dst);
    if (dreg && value !== undefined) s.regs.set(Number(dreg[1]), value);
    if (dst.startsWith("NXM_NX_TUN_ID") && value !== undefined) s.tunId = value;
  }
}

/** The output port of a step, if it outputs ("output:4", "output:NXM_NX_REG2[]" with its note), or "in_port". */
function outputOf(step: TraceStep, s: State): number | "in_port" | undefined {
  for (const a of step.actions) {
    if (a === "IN_PORT" || a === "in_port") return "in_port";
    const m = /^output:(\d+)$/.exec(a);
    if (m) return Number(m[1]);
    const r = /^output:NXM_NX_REG(\d+)\[\]$/.exec(a);
    if (r) {
      const note = step.notes.map((n) => /output port is (\d+)/.exec(n)).find(Boolean);
      return note ? Number(note[1]) : s.regs.get(Number(r[1]));
    }
  }
  return undefined;
}

/** What the sender claims to be, for a spoof-guard miss. */
function spoofReason(ctx: TraceContext, flow: Record<string, string>): string {
  const pod = ctx.from !== "node" ? ctx.from : undefined;
  const sent = `sent from MAC ${flow.dl_src ?? "?"}${flow.nw_src ? `, IP ${flow.nw_src}` : ""}`;
  if (!pod) return `spoofed source: ${sent}, not the pod's own MAC and IP`;
  const wrong = [flow.dl_src && flow.dl_src !== pod.mac ? `MAC ${flow.dl_src} is not ${pod.mac}` : "", flow.nw_src && pod.ip && flow.nw_src !== pod.ip ? `IP ${flow.nw_src} is not ${pod.ip}` : ""].filter(Boolean);
  return `spoofed source: pod ${pod.label} ${sent}${wrong.length ? ` (${wrong.join(", ")})` : ""}`;
}

/** One step in words, given the state after it and the flow it ran on. */
function describe(step: TraceStep, s: State, ctx: TraceContext, flow: Record<string, string>): string {
  const kind = step.cookie === undefined ? undefined : parseCookie(step.cookie)?.kind;
  const owner = cookieOwner(step.cookie, ctx);
  const miss = step.match === undefined || (kind === CookieKind.Node && step.priority === Priority.Miss);
  const reg = (n: number) => s.regs.get(n) ?? 0;
  const inPort = num(flow.in_port);
  const out = outputOf(step, s);
  switch (step.table) {
    case Table.Classifier:
      if (kind === CookieKind.Pod && inPort === ctx.gatewayPort) return `from the node with ${owner}'s address (a Service's DNAT): source segment ${reg(0)}`;
      if (kind === CookieKind.Pod) return `from ${owner} (port ${inPort}): source segment ${reg(0)}`;
      if (kind === CookieKind.Peer) return `over the tunnel from known ${owner}: source segment = VNI ${reg(0)}${reg(0) === 0 ? " (the peer node itself)" : ""}`;
      if (kind === CookieKind.Route) return `dropped: the node sends with an address in a peer's pod range (${owner}); the node never claims a peer's pod`;
      if (kind === CookieKind.Node && !miss) return `from the node (gateway port ${inPort}): source segment 0`;
      return `dropped: port ${inPort ?? "?"} is not a pod, the gateway, or the tunnel from a known peer${flow.tun_src ? ` (tun_src ${flow.tun_src})` : ""}`;
    case Table.SpoofGuard:
      return miss ? `dropped: ${spoofReason(ctx, flow)}` : `source MAC and IP are ${owner}'s own`;
    case Table.ArpResponder:
      if (out === "in_port") return `ARP answered in place (${owner})`;
      if (typeof out === "number") return `ARP reply for the gateway handed to ${portName(ctx, out)}`;
      return miss ? "dropped: neither IP nor an ARP this table answers" : "IP: on to conntrack";
    case Table.FromNode:
      if (out === "in_port") return `the node's ARP for a peer's pod range answered (${owner})`;
      if (typeof out === "number") return `the node's ARP delivered to ${portName(ctx, out)}`;
      return "on to conntrack";
    case Table.Conntrack: {
      const ct = step.actions.find((a) => a.startsWith("ct("));
      if (!ct) return "not IP: conntrack skipped";
      const zone = /zone=(\d+)/.exec(ct)?.[1];
      const next = /table=(\d+)/.exec(ct)?.[1];
      return `conntrack lookup in zone ${zone ?? "?"}; the packet continues in table ${next} (${tableName(Number(next))}) after recirculation`;
    }
    case Table.ConntrackState:
      if (step.actions.some((a) => a.startsWith("ct(commit"))) return "a new connection from the node: committed (ct_mark 1), so its replies come back to the node";
      if (out === ctx.gatewayPort && out !== undefined) return "a reply of a connection the node started: back to the node (its conntrack undoes its NAT)";
      if (!miss) return "from the node: on to L3 forwarding";
      return `ct_state ${flow.ct_state ?? "?"}, not a reply to the node's connection: on to L3 forwarding`;
    case Table.L3Forwarding: {
      if (kind === CookieKind.Pod) {
        const pod = podOnPort(ctx, reg(2));
        return `destination is ${owner} (segment ${reg(1)}, port ${reg(2)}${pod ? "" : ", not a known pod port"})`;
      }
      if (kind === CookieKind.Route) return `destination is in a peer node's pod range: tunnel to ${s.tunDst ?? "?"} with VNI = source segment ${s.tunId ?? reg(0)}`;
      if (step.priority === Priority.TunnelGuard) return "dropped: tunnel traffic that is not for a local pod (no remote pod uses this node as a router)";
      if (kind === CookieKind.Node && step.priority === Priority.ToNode) return "not a local pod nor a peer's pod range: handed to the node through the gateway";
      return "dropped: not IP";
    }
    case Table.SegmentCheck: {
      const a = reg(0);
      const b = reg(1);
      const dst = typeof out === "number" ? ` → output to ${portName(ctx, out)}` : "";
      if (miss) return `pod in segment ${a}, destination in segment ${b} → dropped (different segments, neither global)`;
      if (kind === CookieKind.Segment) return `source and destination both in segment ${a}${dst}`;
      if (kind === CookieKind.Global) return `${owner} reaches and is reached by every segment (source ${a}, destination ${b})${dst}`;
      return `from the node (segment 0): may reach every segment (destination in segment ${b})${dst}`;
    }
    case Table.EgressTrack:
    case Table.EgressRule:
    case Table.TunnelOut:
    case Table.IngressRule:
      return describePolicy(step, ctx, kind, owner, miss);
    default:
      return step.actions.join(", ") || "drop";
  }
}

/** A step of the NetworkPolicy tables in words: which policy rule allowed it, or whose isolation dropped it. */
function describePolicy(step: TraceStep, ctx: TraceContext, kind: number | undefined, owner: string | undefined, miss: boolean): string {
  const commits = step.actions.some((a) => a.startsWith("ct(commit"));
  const conj = /conj_id=(\d+)/.exec(step.match ?? "")?.[1];
  const ingress = step.table === Table.IngressRule;
  if (step.table === Table.EgressTrack) {
    return miss ? "no NetworkPolicy selects the sender: on to L3 forwarding" : `the sender is selected by a NetworkPolicy: conntrack lookup, on to ${tableName(Table.EgressRule)}`;
  }
  if (step.table === Table.TunnelOut) return commits ? "a connection a policy check passed: committed, out the tunnel" : "out the tunnel";
  if (conj !== undefined) return `allowed by ${ctx.rules?.[Number(conj)] ?? `${owner ?? "a NetworkPolicy"} (conj_id ${conj})`}${commits ? "; committed" : ""}`;
  if (kind === CookieKind.Policy && step.priority === PolicyPriority.AllowAll) return `allowed by ${owner} (a rule that allows everything ${ingress ? "to" : "from"} the pod)`;
  if (kind === CookieKind.Policy && step.priority === PolicyPriority.Default) return `dropped by NetworkPolicy: ${owner}: ${ingress ? "ingress" : "egress"}-isolated, and no rule of the policies selecting it allows this`;
  if (kind === CookieKind.Policy && commits) return "the destination is selected by a NetworkPolicy but not isolated for ingress: committed";
  if (step.priority === PolicyPriority.Pass) return /reg0=0\b/.test(step.match ?? "") ? "from the node: allowed by every policy" : "established or related connection: allowed";
  if (commits) return "a new connection a policy check passed: committed";
  return ingress ? "no NetworkPolicy isolates the destination: on to the segment check" : "not isolated for egress: allowed, marked for commit";
}

/** Explains a parsed trace with the node's names; the verdict is the last pass's outcome. */
export function explainTrace(t: ParsedTrace, ctx: TraceContext): Explanation {
  const steps: ExplainedStep[] = [];
  const resumes: Explanation["resumes"] = [];
  let verdict: Verdict | undefined;
  let last: { step: TraceStep; says: string } | undefined;
  let state: State = { regs: new Map() };
  t.passes.forEach((p, i) => {
    if (p.recirc) resumes.push({ pass: i, ctState: p.ctState ?? "" });
    state = { regs: new Map() };
    for (const [k, v] of Object.entries(p.flow)) {
      const r = /^reg(\d+)$/.exec(k);
      if (r) state.regs.set(Number(r[1]), num(v) ?? 0);
    }
    verdict = undefined;
    for (const step of p.steps) {
      if (step.bridge && p.bridge && step.bridge !== p.bridge) {
        const says = `underlay bridge ${step.bridge}: ${[...step.actions, ...step.notes].join(", ") || "drop"}`;
        steps.push({ pass: i, bridge: step.bridge, table: step.table, tableName: `${step.bridge} table ${step.table}`, purpose: "", actions: step.actions, says });
        continue;
      }
      step.actions.forEach((a) => apply(state, a, step.notes));
      const says = describe(step, state, ctx, p.flow);
      const info = TABLES[step.table];
      const e: ExplainedStep = { pass: i, table: step.table, tableName: tableName(step.table), purpose: info?.purpose ?? "", actions: step.actions, says };
      const owner = cookieOwner(step.cookie, ctx);
      if (owner) e.owner = owner;
      if (step.match !== undefined) e.match = step.match;
      if (step.priority !== undefined) e.priority = step.priority;
      steps.push(e);
      last = { step, says };
      const out = outputOf(step, state);
      if (out !== undefined && !verdict) verdict = toVerdict(out, state, ctx, step.notes);
    }
  });
  const lastPass = t.passes[t.passes.length - 1];
  if (!verdict) {
    const table = last?.step.table ?? -1;
    verdict = { kind: "dropped", table, tableName: tableName(table), reason: last ? last.says.replace(/^dropped: /, "") : "no pipeline step in the trace" };
  }
  return { steps, resumes, verdict, summary: summarize(verdict), datapathActions: lastPass?.datapathActions ?? "" };
}

function toVerdict(out: number | "in_port", s: State, ctx: TraceContext, notes: readonly string[]): Verdict {
  if (out === "in_port") return { kind: "returned" };
  if (out === ctx.tunnelPort) {
    const peer = s.tunDst ?? "?";
    const v: Verdict = { kind: "tunnel", peer, vni: s.tunId ?? s.regs.get(0) ?? 0 };
    const cidr = ctx.networks.flatMap((n) => n.peers).find((x) => x.nodeIP === peer)?.podCIDR;
    if (cidr) v.podCIDR = cidr;
    const miss = notes.find((n) => n.startsWith("neighbor cache miss"));
    if (miss) v.note = `${miss}: the datapath drops this one packet while the underlay neighbour resolves`;
    return v;
  }
  if (out === ctx.gatewayPort) return { kind: "node", port: out };
  const pod = podOnPort(ctx, out);
  return pod ? { kind: "delivered", pod: pod.label, port: out } : { kind: "output", port: out };
}

/** The verdict in one sentence. */
export function summarize(v: Verdict): string {
  switch (v.kind) {
    case "delivered":
      return `delivered to pod ${v.pod} (port ${v.port})`;
    case "tunnel":
      return `sent to node ${v.peer} over the tunnel, VNI ${v.vni}${v.podCIDR ? ` (its pod range ${v.podCIDR})` : ""}`;
    case "node":
      return `handed to the node (gateway port ${v.port})`;
    case "returned":
      return "answered in place: sent back out the port it came in on";
    case "output":
      return `output to port ${v.port}`;
    case "dropped":
      return `dropped in table ${v.table} (${v.tableName}): ${v.reason}`;
  }
}
