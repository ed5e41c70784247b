// The node's host state a network needs, as data: gateway addresses, routes to peers, masquerade and raw rules.
import { sha256Hex } from "../net/hash.ts";
import type { PeerFlowSpec } from "./builders.ts";
import { GATEWAY_PORT } from "./names.ts";
import { cidrContains, parseCidr, parseV4Range, type V4Range } from "../net/ip.ts";

/** The routing protocol number ovsplane's routes carry (`ip route show proto 111`): how they are found again. */
export const ROUTE_PROTO = 111;

/** The metric of a network's routes: 1000 + its 8-bit id, so each network finds its own. */
export function routeMetric(netId: bigint): number {
  return 1000 + Number(netId);
}

/** What one network needs of the node's kernel. */
export interface HostSpec {
  network: string;
  netId: bigint;
  /** Gateway addresses with the pod prefix (on the gateway port). */
  gateways: readonly string[];
  /** The IPv4 gateway, the source of the node's packets to peers' pods. */
  gatewayIP: string;
  peers: readonly PeerFlowSpec[];
  /** This node's pod ranges (masquerade sources). */
  podCIDRs: readonly string[];
  /** The cluster's pod ranges (never masqueraded to). */
  clusterRanges: readonly string[];
  /** The cluster's pod ranges as configured (`clusterCIDR`), when they were: routed whole instead of per peer. */
  clusterCIDRs?: readonly string[];
  /** routedRanges of this spec when already worked out (static mode: while the config's peers were parsed). */
  routed?: readonly string[];
  masquerade: boolean;
}

/** A short hash of some text, for fingerprints and chain names. */
function short(text: string): string {
  return sha256Hex(text).slice(0, 8);
}

/** The nat chain of a network's masquerade (28 characters at most, as iptables wants). */
export function masqueradeChain(network: string): string {
  return `OVSPLANE-MASQ-${short(network).toUpperCase()}`;
}

/** The raw chain that keeps pods' packets out of the node's IP stack except through the gateway. */
export const RAW_CHAIN = "OVSPLANE-PODS";

/** The prefix of host veth names (names.hostVethName). */
const VETH_PREFIX = "ovsp";

/**
 * The marker routes of a network: its own pod ranges (from its gateway addresses) again, through the
 * gateway at the network's metric. The connected route (metric 0) carries the traffic; the marker only
 * tells, from /proc/net/route, that this netns holds the network's host state.
 */
export function markerRoutes(s: HostSpec): string[] {
  return [...new Set(s.gateways.map((g) => networkOf(g)))];
}

/** `A.B.C.D/len` of the network an address with prefix lies in. */
function networkOf(addr: string): string {
  const [ip, len] = addr.split("/");
  const bits = Number(len ?? 32);
  const n = ip!.split(".").reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n) & (((1n << 32n) - 1n) ^ ((1n << BigInt(32 - bits)) - 1n));
  return `${[24n, 16n, 8n, 0n].map((sh) => String((n >> sh) & 0xffn)).join(".")}/${bits}`;
}

/**
 * The ranges the node routes through the gateway to reach other nodes' pods: each configured
 * `clusterCIDR` once, plus any peer range outside them; without `clusterCIDR`, every peer's range. One
 * route whatever the number of peers keeps a Node event off the routing table and keeps an ADD cheap on a
 * big cluster: ovs-vswitchd reads the whole table again after every link change (each pod's veth), and
 * 1,000 routes cost an ADD 65–85 ms of waiting for it.
 */
export function routedRanges(s: Pick<HostSpec, "peers" | "clusterCIDRs" | "routed">, parsed?: readonly (Pick<V4Range, "first" | "last"> | undefined)[]): string[] {
  if (s.routed) return [...s.routed];
  const peers = s.peers.map((p) => p.podCIDR);
  if (!s.clusterCIDRs?.length) return peers;
  const clusters = s.clusterCIDRs.map((c) => ({ text: c, v4: parseV4Range(c) }));
  const out = [...s.clusterCIDRs];
  // Plain loops on numbers (the peers' ranges as parsed already, when the caller has them): 1,000 peers in a cold process.
  for (let i = 0; i < peers.length; i++) {
    const cidr = peers[i]!;
    const r = parsed?.[i] ?? parseV4Range(cidr);
    let inside = false;
    for (const c of clusters) {
      if (r && c.v4) inside ||= c.v4.first <= r.first && r.last <= c.v4.last;
      else inside ||= cidrContains(c.text, parseCidr(cidr).base) && parseCidr(c.text).prefix <= parseCidr(cidr).prefix;
    }
    if (!inside) out.push(cidr);
  }
  return out;
}

/** The `ip -batch` lines that bring the gateway, the marker routes and the routes to other nodes' pods to the spec. */
export function routeLines(s: HostSpec, ranges: readonly string[] = routedRanges(s)): string[] {
  const metric = routeMetric(s.netId);
  const via = (dst: string) => `route replace ${dst} dev ${GATEWAY_PORT} src ${s.gatewayIP} proto ${ROUTE_PROTO} metric ${metric}`;
  return [
    ...s.gateways.map((g) => `addr replace ${g} dev ${GATEWAY_PORT}`),
    `link set ${GATEWAY_PORT} up`,
    ...markerRoutes(s).map(via),
    ...ranges.map(via),
  ];
}

/** A route as `ip -j route show` prints it. */
export interface RouteJson {
  dst: string;
  dev?: string;
  protocol?: string | number;
  metric?: number;
}

/** The `ip -batch` lines that delete this network's routes (found by proto and metric) that are not wanted. */
export function staleRouteLines(current: readonly RouteJson[], netId: bigint, wanted: readonly string[]): string[] {
  const keep = new Set(wanted);
  return current
    .filter((r) => r.metric === routeMetric(netId) && !keep.has(r.dst))
    .map((r) => `route del ${r.dst} dev ${r.dev ?? GATEWAY_PORT} proto ${ROUTE_PROTO} metric ${r.metric}`);
}

const quote = (s: string) => `"${s.replace(/"/g, "")}"`;

/** Lines of an `iptables-save` table section (`*nat` … `COMMIT`) that append to a chain. */
function appends(save: string, table: string, chain: string): string[] {
  const out: string[] = [];
  let inTable = false;
  for (const line of save.split("\n")) {
    if (line.startsWith("*")) inTable = line === `*${table}`;
    else if (inTable && line.startsWith(`-A ${chain} `)) out.push(line);
  }
  return out;
}

/** The jumps to `target` already in `chain` of a table, as iptables-save prints them. */
function jumpsTo(save: string, table: string, chain: string, target: string): string[] {
  return appends(save, table, chain).filter((l) => l.endsWith(` -j ${target}`));
}

/**
 * The `iptables-restore --noflush` text that brings a network's masquerade and the node's raw guard to
 * the spec, given what `iptables-save` prints now: our chains are declared (so rewritten whole), jumps
 * to them added only where missing. Nothing of anyone else's is touched.
 */
export function iptablesApply(s: HostSpec, save: string): string {
  const chain = masqueradeChain(s.network);
  const nat: string[] = [];
  if (s.masquerade) {
    nat.push(`:${chain} - [0:0]`);
    for (const r of s.clusterRanges) nat.push(`-A ${chain} -d ${r} -m comment --comment ${quote(`ovsplane ${s.network}: no NAT inside the cluster`)} -j RETURN`);
    nat.push(`-A ${chain} -m comment --comment ${quote(`ovsplane ${s.network}: pod egress leaves with the node's address`)} -j MASQUERADE`);
    const have = new Set(jumpsTo(save, "nat", "POSTROUTING", chain));
    for (const src of s.podCIDRs) {
      const jump = `-A POSTROUTING -s ${src} -m comment --comment ${quote(`ovsplane ${s.network}`)} -j ${chain}`;
      if (![...have].some((l) => l.includes(`-s ${src}`))) nat.push(jump);
    }
  } else {
    nat.push(...removeChain(save, "nat", "POSTROUTING", chain));
  }
  const raw = [
    `:${RAW_CHAIN} - [0:0]`,
    `-A ${RAW_CHAIN} -i ${GATEWAY_PORT} -j RETURN`,
    `-A ${RAW_CHAIN} -i ${VETH_PREFIX}+ -m comment --comment ${quote("ovsplane: pods reach the node only through the gateway")} -j DROP`,
  ];
  if (!jumpsTo(save, "raw", "PREROUTING", RAW_CHAIN).length) raw.push(`-A PREROUTING -m comment --comment ${quote("ovsplane")} -j ${RAW_CHAIN}`);
  return [...section("nat", nat), ...section("raw", raw)].join("\n") + "\n";
}

/** Lines that remove a chain of ours and every jump to it (nothing when it is not there). */
function removeChain(save: string, table: string, from: string, chain: string): string[] {
  if (!save.split("\n").some((l) => l.startsWith(`:${chain} `))) return [];
  return [...jumpsTo(save, table, from, chain).map((l) => l.replace(/^-A /, "-D ")), `-F ${chain}`, `-X ${chain}`];
}

function section(table: string, lines: readonly string[]): string[] {
  return lines.length ? [`*${table}`, ...lines, "COMMIT"] : [];
}

/** The `iptables-restore --noflush` text that removes a network's masquerade (and, when `raw`, the node's raw guard). */
export function iptablesRemove(network: string, save: string, raw: boolean): string {
  const nat = removeChain(save, "nat", "POSTROUTING", masqueradeChain(network));
  const r = raw ? removeChain(save, "raw", "PREROUTING", RAW_CHAIN) : [];
  const text = [...section("nat", nat), ...section("raw", r)];
  return text.length ? text.join("\n") + "\n" : "";
}

/** The parts of a spec's fingerprint: iptables (masquerade, raw guard), gateway (addresses, route source, metric), routes to other nodes' pods. */
export function hostFingerprintParts(s: HostSpec): { iptables: string; gateway: string; peers: string } {
  return {
    iptables: short(JSON.stringify([s.network, s.masquerade, s.podCIDRs, s.clusterRanges])),
    gateway: short(JSON.stringify([s.network, String(s.netId), s.gateways, s.gatewayIP])),
    peers: short(JSON.stringify(routedRanges(s))),
  };
}

/**
 * The fingerprint of a spec, `IPTABLES-GATEWAY-PEERS`: host state is rewritten only when it changes,
 * and then only the parts that changed (a peer's Node event touches routes, not iptables).
 */
export function hostFingerprint(s: HostSpec): string {
  let f = fingerprints.get(s);
  if (f === undefined) {
    const p = hostFingerprintParts(s);
    fingerprints.set(s, (f = `${p.iptables}-${p.gateway}-${p.peers}`));
  }
  return f;
}

/** Fingerprints by spec object: an ADD checks one spec twice (before and under the node lock), with 1,000 peers. */
const fingerprints = new WeakMap<HostSpec, string>();
