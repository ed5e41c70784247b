// The agent's OVS reconcile: bridge and shared ports, node-wide flows, pods' flows replayed, host state, in one pass.
import { nodeFlows, podFlows, segmentFlows, type PeerFlowSpec } from "../dataplane/builders.ts";
import { diffFlows, desiredNodeFlows, NODE_SCOPE, slicedNodeDiff, type CookieFilter } from "../dataplane/model.ts";
import { CookieKind, cookie, EXACT_MASK, KIND_MASK, NODE_COOKIE, peerCookie, routeCookie } from "../dataplane/pipeline.ts";
import { networkId } from "../dataplane/names.ts";
import { parseIp } from "../net/ip.ts";
import type { HostSpec } from "../dataplane/hoststate.ts";
import { type Flow, type FlowOp } from "../ovs/flow.ts";
import { flowKey } from "../ovs/flow-text.ts";
import { trace } from "../host/exec.ts";
import { setToArray, type OvsdbClient } from "../ovs/ovsdb.ts";
import { bridgeIds, ensureNode, listPorts, setBridgeId } from "../node/bridge.ts";
import { flowsKey } from "../plugin/staticflows.ts";
import { readFlows, type Switch } from "../node/flows.ts";
import { applyHostState, hostKey, isApplied } from "../node/host.ts";
import { OVS_TIMEOUT_MS, withLock } from "../node/lock.ts";
import type { OvsConnections } from "./conns.ts";
import { nodeSpec } from "../plugin/plan.ts";
import type { OvsplaneConfig } from "../plugin/config.ts";
import { agentHostSpec, agentNodeModel, podFlowSpecs, type NodeFacts, type PodPort } from "./model.ts";
import { POLICY_SCOPE, type PolicyWant } from "./policy.ts";
import { SERVICE_SCOPE, type ServiceWant } from "./services.ts";
import type { ServiceNodePorts } from "../dataplane/services.ts";

/** What one OVS reconcile works from. */
export interface OvsInput {
  cfg: OvsplaneConfig;
  self: NodeFacts;
  peers: readonly PeerFlowSpec[];
  /** The node's NetworkPolicy flows for its pod ports (policy.ts); undefined leaves the bridge's as they are. */
  policy?: (ports: readonly PodPort[]) => PolicyWant | undefined;
  /** The node's Service flows (services.ts); undefined leaves the bridge's as they are. */
  services?: (ports: ServiceNodePorts) => ServiceWant | undefined;
}

/** What one OVS reconcile did. */
export interface OvsOutcome {
  ofports: { tunnel: number; gateway: number };
  /** Node-wide flow changes written (adds and deletes). */
  nodeChanges: number;
  /** Pods' and segments' flows written back (missing or different). */
  podReplays: number;
  /** Pod ports of the network found. */
  pods: number;
  /** Host state was (re)applied. */
  hostApplied: boolean;
  /** The pipeline defaults were missing and written (a new bridge, a flush, an ovs-vswitchd restart). */
  restored: boolean;
  /** NetworkPolicy flow changes written (adds and deletes). */
  policyChanges: number;
  /** Service flow changes written (adds and deletes). */
  serviceChanges: number;
}

/** The pods' and segments' cookies, read back to replay what is missing. */
const POD_SCOPE: readonly CookieFilter[] = [CookieKind.Pod, CookieKind.Segment].map((k) => ({ cookie: cookie(k, 0n), mask: KIND_MASK }));

/** Pod ports of the network with their OpenFlow numbers (two selects, one round trip each). */
async function podPorts(c: OvsdbClient, network: string): Promise<PodPort[]> {
  const ports = await listPorts(c, network);
  const [ifs] = await c.transact([{ op: "select", table: "Interface", where: [], columns: ["name", "ofport"] }]);
  const ofport = new Map<string, number>(
    ifs.rows.map((r: { name: string; ofport: unknown }) => [r.name, Number(setToArray(r.ofport)[0] ?? -1)]),
  );
  return ports.flatMap((p) => (p.attachment ? [{ attachment: p.attachment, ofport: ofport.get(p.name) ?? -1 }] : []));
}

/**
 * The pod flow changes: every pod's flows and its segment's flow the builders make, written where
 * missing or different. Only cookies of known pods and used segments are compared: a pod's DEL (or
 * GC) removes its own flows, and a segment's flow is the plugin's to remove when its last pod leaves.
 */
export function podFlowOps(current: readonly Flow[], desired: readonly Flow[]): FlowOp[] {
  const wanted = new Set(desired.map((f) => f.cookie));
  return diffFlows(current.filter((f) => wanted.has(f.cookie)), desired);
}

/**
 * One reconcile of the node's OVS state: ensure the bridge and shared ports, then under the node lock
 * read the node-wide (all of them, or when only peers changed since the last reconcile of the bridge
 * only theirs and the defaults), pod and segment flows back and write the differences as one bundle, and apply
 * the host state when its fingerprint (or the kernel's marker route) says it changed.
 */
export async function reconcileOvs(input: OvsInput, conns: OvsConnections): Promise<OvsOutcome> {
  const { cfg, self, peers } = input;
  trace(`agent reconcile of ${peers.length} peers`);
  const c = await conns.ovsdb(cfg.ovsdbSocket);
  const ofports = await ensureNode(c, nodeSpec(cfg, self.address!), undefined, OVS_TIMEOUT_MS);
  trace("bridge and shared ports ensured");
  const model = agentNodeModel(cfg, ofports, self, peers);
  const ports = await podPorts(c, cfg.name);
  const pods = podFlowSpecs(cfg.name, ports);
  const policy = input.policy?.(ports);
  const services = input.services?.(model.ports);
  const wantPods = pods.flatMap((p) => [...podFlows(p, model.ports), ...segmentFlows(p.segment)]);
  const spec: HostSpec = agentHostSpec(cfg, self, peers);
  trace(`pod ports read (${pods.length})`);
  return await withLock(c, cfg.bridge, async () => {
    const { nodeChanges, restored, podOps, policyOps, serviceOps } = await conns.sw.use(cfg.ofSocket, async (sw) => {
      const now = peersByAddress(peers);
      const key = appliedKey(cfg, self, ofports);
      const prev = lastApplied.get(cfg.ofSocket);
      lastApplied.delete(cfg.ofSocket);
      const changed = prev?.key === key ? changedAddresses(prev.peers, now) : undefined;
      const [pod, incremental] = await Promise.all([sw.read(POD_SCOPE), changed ? peerOps(sw, cfg, self, ofports, peers, changed) : undefined]);
      const nodeOps = incremental ?? [];
      let full = { changes: 0, restored: false };
      if (!incremental) {
        const node = await sw.read(NODE_SCOPE);
        trace(`${node.length} node-wide flows read`);
        full = await writeSliced(sw, slicedNodeDiff(node, model, PEERS_PER_BUNDLE));
      }
      trace(`node-wide flows diffed (${incremental ? `${changed!.size} peers changed` : "all"}): ${incremental ? nodeOps.length : full.changes} changes`);
      const podOps = podFlowOps(pod, dedupe(wantPods));
      // Policy flows, in the same bundle: on a full reconcile (a restart's replay) diffed against the bridge's, read
      // back; when only they changed, against those last written.
      const policyOps = policy && (policy.changed || !incremental) ? diffFlows(incremental && policy.previous ? policy.previous : await sw.read(POLICY_SCOPE), policy.flows) : [];
      const serviceOps = services && (services.changed || !incremental) ? diffFlows(await sw.read(SERVICE_SCOPE), services.flows) : [];
      await sw.apply([...nodeOps, ...podOps, ...policyOps, ...serviceOps]);
      policy?.applied();
      services?.applied();
      lastApplied.set(cfg.ofSocket, { key, peers: now });
      const restored = full.restored || wroteDefaults(nodeOps);
      return { nodeChanges: nodeOps.length + full.changes, restored, podOps, policyOps, serviceOps };
    });
    let hostApplied = false;
    const ids = await bridgeIds(c, cfg.bridge);
    // A static ADD trusts its fingerprint of the node-wide flows; the agent's flows are not the ones it recorded.
    if (ids[flowsKey(cfg.name)] !== undefined) await setBridgeId(c, cfg.bridge, flowsKey(cfg.name), undefined);
    if (!isApplied(spec, ids)) {
      await applyHostState(c, cfg.bridge, spec, ids[hostKey(cfg.name)]);
      hostApplied = true;
    }
    return { ofports, nodeChanges, podReplays: podOps.filter((o) => o.op === "add").length, pods: pods.length, hostApplied, restored, policyChanges: policyOps.length, serviceChanges: serviceOps.length };
  });
}

/** Peers whose flows a full node-wide reconcile builds and writes per bundle (see slicedNodeDiff). */
const PEERS_PER_BUNDLE = 200;

/** True when ops write a pipeline default (they were missing: a new bridge, a flush, a restart). */
function wroteDefaults(ops: readonly FlowOp[]): boolean {
  return ops.some((o) => o.op === "add" && o.flow.cookie === NODE_COOKIE);
}

/** Writes each slice of a full node-wide diff as its own bundle, before the next slice is built. */
async function writeSliced(sw: Switch, slices: Iterable<FlowOp[]>): Promise<{ changes: number; restored: boolean }> {
  let changes = 0;
  let restored = false;
  for (const ops of slices) {
    await sw.apply(ops);
    changes += ops.length;
    restored ||= wroteDefaults(ops);
    collect(); // the slice's flows and texts are garbage now: the next slice reuses their memory (peak RSS)
  }
  return { changes, restored };
}

/** A full collection now, on Bun (a full reconcile's slices: ~5 ms each against a peak RSS that varied by ~15 MiB). */
function collect(): void {
  (globalThis as { Bun?: { gc?(force: boolean): void } }).Bun?.gc?.(true);
}

/** What the last reconcile of a bridge wrote: its inputs but the peers, and each peer address's pod ranges. */
const lastApplied = new Map<string, { key: string; peers: Map<string, string> }>();

/** Everything of a reconcile's input but the peers (a change of any of it calls for a full reconcile). */
function appliedKey(cfg: OvsplaneConfig, self: NodeFacts, ofports: { tunnel: number; gateway: number }): string {
  return JSON.stringify([cfg, self, ofports], (_, v) => (typeof v === "bigint" ? v.toString() : v));
}

/** Each peer address with its pod ranges (a route cookie covers all ranges of one address). */
function peersByAddress(peers: readonly PeerFlowSpec[]): Map<string, string> {
  const m = new Map<string, string[]>();
  for (const p of peers) m.set(p.nodeIP, [...(m.get(p.nodeIP) ?? []), p.podCIDR]);
  return new Map([...m].map(([ip, r]) => [ip, r.sort().join(",")]));
}

/** Peer addresses added, removed or with other pod ranges. */
function changedAddresses(prev: ReadonlyMap<string, string>, now: ReadonlyMap<string, string>): Set<string> {
  const out = new Set<string>();
  for (const [ip, r] of now) if (prev.get(ip) !== r) out.add(ip);
  for (const ip of prev.keys()) if (!now.has(ip)) out.add(ip);
  return out;
}

/**
 * The node-wide flow changes when only some peers changed since the last reconcile (a Node event):
 * the pipeline defaults, gateway and global flows and those peers' acceptance and route flows are read
 * back (by cookie) and diffed, no other peer's. Undefined when the defaults are missing (a flush or an
 * ovs-vswitchd restart): then everything is read back.
 */
async function peerOps(sw: Switch, cfg: OvsplaneConfig, self: NodeFacts, ofports: { tunnel: number; gateway: number }, peers: readonly PeerFlowSpec[], changed: ReadonlySet<string>): Promise<FlowOp[] | undefined> {
  const netId = networkId(cfg.name);
  const scope: CookieFilter[] = [
    ...[CookieKind.Node, CookieKind.Gateway, CookieKind.Global].map((k) => ({ cookie: cookie(k, 0n), mask: KIND_MASK })),
    ...[...changed].flatMap((ip) => [peerCookie(parseIp(ip).value), routeCookie(netId, parseIp(ip).value)].map((c) => ({ cookie: c, mask: EXACT_MASK }))),
  ];
  const current = await sw.read(scope);
  const desired = desiredNodeFlows(agentNodeModel(cfg, ofports, self, peers.filter((p) => changed.has(p.nodeIP))));
  const ops = diffFlows(current, desired);
  return ops.some((o) => o.op === "add" && o.flow.cookie === NODE_COOKIE) ? undefined : ops;
}

/** Flows without repeats (a segment's flow is wanted once per pod in it). */
function dedupe(flows: readonly Flow[]): Flow[] {
  return [...new Map(flows.map((f) => [flowKey(f), f])).values()];
}

/**
 * The cheap periodic check: true when every pipeline default is on the bridge (one dump of the Node
 * cookie). A flush or an ovs-vswitchd restart takes them with everything else, so their absence calls
 * for a full reconcile.
 */
export async function nodeFlowsPresent(ofSocket: string, ports: { tunnel: number; gateway: number; gatewayMAC: string }): Promise<boolean> {
  const have = await readFlows(ofSocket, [{ cookie: NODE_COOKIE, mask: EXACT_MASK }]);
  return have.length >= nodeFlows(ports).length;
}
