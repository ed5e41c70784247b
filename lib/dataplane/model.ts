// The node model and the node-wide flows it implies; differences between flows read back and flows wanted.
import { sha256Hex } from "../net/hash.ts";
import { formatValue, type Flow, type FlowOp } from "../ovs/flow.ts";
import { flowKey, renderActions } from "../ovs/flow-text.ts";
import { gatewayFlows, globalFlows, nodeFlows, peerFlows, routeFlows, type NodePorts, type PeerFlowSpec } from "./builders.ts";
import { CookieKind, EXACT_MASK, KIND_MASK, NETWORK_KIND_MASK, NODE_COOKIE, cookie, gatewayCookie, parseCookie } from "./pipeline.ts";
import { networkId } from "./names.ts";

/** One network on this node: its gateway address, its peers (remote nodes and their pod ranges), its global segments. */
export interface NetworkModel {
  name: string;
  gatewayIP: string;
  peers: readonly PeerFlowSpec[];
  globalSegments: readonly number[];
}

/** What node-wide flows are computed from: the bridge's ports and gateway MAC, the networks on it. */
export interface NodeModel {
  ports: NodePorts;
  networks: readonly NetworkModel[];
}

/** The flows of one network: its gateway, its routes to each peer's pod range, its global segments. */
export function networkFlows(m: NodeModel, n: NetworkModel): Flow[] {
  const netId = networkId(n.name);
  return [
    ...gatewayFlows({ netId, gatewayIP: n.gatewayIP, gatewayMAC: m.ports.gatewayMAC, gatewayPort: m.ports.gateway }),
    ...n.peers.flatMap((p) => routeFlows(netId, p, m.ports)),
    ...n.globalSegments.flatMap((g) => globalFlows(netId, g)),
  ];
}

/** Tunnel acceptance for each distinct peer address. */
function acceptPeers(ips: Iterable<string>, tunnelPort: number): Flow[] {
  return [...new Set(ips)].sort().flatMap((ip) => peerFlows(ip, tunnelPort));
}

/**
 * Every node-wide flow the model implies (all but pods' and segments'): the pipeline defaults, each
 * network's gateway and routes, and tunnel acceptance from every peer of any network.
 */
export function desiredNodeFlows(m: NodeModel): Flow[] {
  return [
    ...nodeFlows(m.ports),
    ...m.networks.flatMap((n) => networkFlows(m, n)),
    ...acceptPeers(m.networks.flatMap((n) => n.peers.map((p) => p.nodeIP)), m.ports.tunnel),
  ];
}

/** One flow as text: its identity and content (cookie, actions), as diffFlows compares them. */
function flowText(f: Flow): string {
  return `${flowKey(f)} ${f.cookie} ${renderActions(f.actions)}`;
}

/**
 * The fingerprint of what one network wants of the node-wide flows in static mode: a hash of the model's
 * inputs (ports, gateway, peers, global segments) and of the flows the builders make for at most one
 * peer of it, so a new peer, a new gateway or ofport, or a plugin whose builders changed all give a new
 * fingerprint, while computing it stays O(1) in flows (the peers are hashed as data, never built).
 */
export function networkFlowsFingerprint(m: NodeModel, network: string): string {
  const n = m.networks.find((x) => x.name === network);
  if (!n) throw new Error(`network ${network} is not in the node model`);
  const sample: NodeModel = { ports: m.ports, networks: [{ ...n, peers: n.peers.slice(0, 1) }] };
  const data = JSON.stringify([m.ports, n.name, n.gatewayIP, n.globalSegments, n.peers]);
  return sha256Hex([data, ...desiredNodeFlows(sample).map(flowText)].join("\n")).slice(0, 16);
}

/**
 * True when the bridge holds as many pipeline defaults (cookie NODE_COOKIE) as the model has: what a
 * static ADD checks, with the fingerprint, before it trusts the node-wide flows without reading them
 * back. A flush or a restarted ovs-vswitchd takes the defaults with everything else; their content is
 * the fingerprint's (it covers the ports and the rendered defaults), so the switch only counts them.
 */
export function defaultsHold(ports: NodePorts, count: number): boolean {
  return count === nodeFlows(ports).length;
}

/** A cookie filter for reading flows back. */
export interface CookieFilter {
  cookie: bigint;
  mask: bigint;
}

/** The flows a whole-node reconcile reads back (and so may change): every node-wide kind. */
export const NODE_SCOPE: readonly CookieFilter[] = [CookieKind.Node, CookieKind.Gateway, CookieKind.Route, CookieKind.Peer, CookieKind.Global].map((k) => ({
  cookie: cookie(k, 0n),
  mask: KIND_MASK,
}));

/**
 * The flows one network's static reconcile reads back: the bridge defaults, its own gateway and global
 * segments, every network's routes (a peer stays accepted while any network routes to it) and every
 * peer acceptance.
 */
export function networkScope(network: string): CookieFilter[] {
  return [
    { cookie: NODE_COOKIE, mask: EXACT_MASK },
    { cookie: gatewayCookie(networkId(network)), mask: NETWORK_KIND_MASK },
    { cookie: cookie(CookieKind.Global, networkId(network) << 32n), mask: NETWORK_KIND_MASK },
    { cookie: cookie(CookieKind.Route, 0n), mask: KIND_MASK },
    { cookie: cookie(CookieKind.Peer, 0n), mask: KIND_MASK },
  ];
}

/**
 * What one network wants of the node-wide flows, given the flows of networkScope() read back: the
 * bridge defaults, its gateway and routes, and tunnel acceptance from its peers and from every peer
 * another network still routes to. Other networks' gateways and routes are theirs: returned as
 * `others`, neither wanted nor unwanted.
 */
export function networkDesired(m: NodeModel, network: string, current: readonly Flow[]): { desired: Flow[]; others: Flow[] } {
  const n = m.networks.find((x) => x.name === network);
  if (!n) throw new Error(`network ${network} is not in the node model`);
  const netId = networkId(network);
  const others = current.filter((f) => {
    const c = parseCookie(f.cookie);
    return (c?.kind === CookieKind.Route || c?.kind === CookieKind.Gateway || c?.kind === CookieKind.Global) && c.id >> 32n !== netId;
  });
  const otherPeers = others.flatMap((f) => {
    const c = parseCookie(f.cookie)!;
    return c.kind === CookieKind.Route ? [formatValue("ipv4", c.id & 0xffffffffn)] : [];
  });
  return {
    desired: [...nodeFlows(m.ports), ...networkFlows(m, n), ...acceptPeers([...n.peers.map((p) => p.nodeIP), ...otherPeers], m.ports.tunnel)],
    others,
  };
}

/**
 * The changes that turn `current` into `desired`: a flow that is missing or differs (cookie or
 * actions) is added (OFPFC_ADD replaces one with the same table, priority and match), a flow that is
 * not wanted is deleted exactly. Nothing is written for flows that are already right.
 */
export function diffFlows(current: readonly Flow[], desired: readonly Flow[]): FlowOp[] {
  // Each flow rendered once: its identity (table, priority, match) and its content (cookie, actions).
  const index = (flows: readonly Flow[]) => new Map(flows.map((f) => [flowKey(f), { f, content: `${f.cookie} ${renderActions(f.actions)}` }]));
  const have = index(current);
  const want = index(desired);
  const ops: FlowOp[] = [];
  for (const [k, w] of want) if (have.get(k)?.content !== w.content) ops.push({ op: "add", flow: w.f });
  for (const [k, h] of have) if (!want.has(k)) ops.push({ op: "delete_strict", flow: h.f });
  return ops;
}

/** The changes one network's static reconcile makes, from the flows of networkScope() read back. */
export function networkReconcile(m: NodeModel, network: string, current: readonly Flow[]): FlowOp[] {
  const { desired, others } = networkDesired(m, network, current);
  const skip = new Set(others);
  return diffFlows(current.filter((f) => !skip.has(f)), desired);
}

/** The peer address a Peer or Route cookie is about (undefined for other kinds). */
function cookiePeer(c: bigint): string | undefined {
  const p = parseCookie(c);
  return p?.kind === CookieKind.Peer || p?.kind === CookieKind.Route ? formatValue("ipv4", p.id & 0xffffffffn) : undefined;
}

/**
 * diffFlows(current, desiredNodeFlows(m)), a slice of peer addresses at a time (pure): the first slice
 * also carries the defaults, gateways and global segments; each slice's flows are built and compared
 * with the current flows of its own cookies only; a last slice deletes the flows of peers no longer
 * in the model. The caller writes each slice before the next is built, so a sync of 1,000 nodes never
 * holds every flow's objects and texts at once (the agent's peak memory).
 */
export function* slicedNodeDiff(current: readonly Flow[], m: NodeModel, peersPerSlice: number): Generator<FlowOp[]> {
  const addresses = [...new Set(m.networks.flatMap((n) => n.peers.map((p) => p.nodeIP)))].sort();
  const byPeer = new Map<string | undefined, Flow[]>();
  for (const f of current) {
    const ip = cookiePeer(f.cookie);
    byPeer.set(ip, [...(byPeer.get(ip) ?? []), f]);
  }
  for (let i = 0; i === 0 || i < addresses.length; i += peersPerSlice) {
    const slice = new Set(addresses.slice(i, i + peersPerSlice));
    const model: NodeModel = { ports: m.ports, networks: m.networks.map((n) => ({ ...n, peers: n.peers.filter((p) => slice.has(p.nodeIP)) })) };
    const desired = desiredNodeFlows(model).filter((f) => i === 0 || cookiePeer(f.cookie) !== undefined);
    const have = [...(i === 0 ? (byPeer.get(undefined) ?? []) : []), ...[...slice].flatMap((ip) => byPeer.get(ip) ?? [])];
    yield diffFlows(have, desired);
  }
  const wanted = new Set(addresses);
  yield [...byPeer].flatMap(([ip, flows]) => (ip !== undefined && !wanted.has(ip) ? flows.map((f): FlowOp => ({ op: "delete_strict", flow: f })) : []));
}
