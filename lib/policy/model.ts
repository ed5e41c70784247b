// NetworkPolicy semantics, pure: label selectors, which policies select a pod, peers and ports resolved against the cluster's pods.
import { cidrContains, cidrsOverlap, parseCidr } from "../net/ip.ts";

/** A Kubernetes label selector (matchLabels and matchExpressions; empty selects everything). */
export interface LabelSelector {
  matchLabels?: Readonly<Record<string, string>>;
  matchExpressions?: readonly { key: string; operator: string; values?: readonly string[] }[];
}

/** Protocols a NetworkPolicy port names (TCP when absent). */
export type PolicyProtocol = "TCP" | "UDP" | "SCTP";

/** One `ports` entry: a protocol, a number or a container port's name, and with a number an optional endPort. */
export interface PolicyPort {
  protocol?: PolicyProtocol;
  port?: number | string;
  endPort?: number;
}

/** One `from`/`to` entry. */
export interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: readonly string[] };
}

/** One ingress or egress rule; `peers` is `from` or `to` (absent or empty: every address), `ports` absent or empty: every port. */
export interface PolicyRule {
  peers?: readonly PolicyPeer[];
  ports?: readonly PolicyPort[];
}

/** A NetworkPolicy as the model needs it (networking.k8s.io/v1 spec). */
export interface Policy {
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  policyTypes?: readonly ("Ingress" | "Egress")[];
  ingress?: readonly PolicyRule[];
  egress?: readonly PolicyRule[];
}

/** A named container port of a pod. */
export interface NamedPort {
  name: string;
  port: number;
  protocol: PolicyProtocol;
}

/** A pod as the model needs it: where it lives, its labels, its IPv4 address, its named ports. */
export interface PodInfo {
  namespace: string;
  name: string;
  labels: Readonly<Record<string, string>>;
  ip?: string;
  node?: string;
  ports: readonly NamedPort[];
}

/** A namespace's labels. */
export interface NamespaceInfo {
  name: string;
  labels: Readonly<Record<string, string>>;
}

/** The direction of a rule, as policyTypes names it. */
export type Direction = "Ingress" | "Egress";

/** True when the selector selects the labels (an empty selector selects all; an unknown operator selects nothing). */
export function selects(sel: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key]!);
    const ok = e.operator === "In" ? inValues : e.operator === "NotIn" ? !inValues : e.operator === "Exists" ? has : e.operator === "DoesNotExist" ? !has : false;
    if (!ok) return false;
  }
  return true;
}

/** The policy's types: as given, else Ingress, and Egress too when it has egress rules (the API server's default). */
export function policyTypes(p: Policy): Direction[] {
  if (p.policyTypes?.length) return [...new Set(p.policyTypes)];
  return (p.egress?.length ?? 0) > 0 ? ["Ingress", "Egress"] : ["Ingress"];
}

/** True when the policy selects the pod (same namespace, podSelector). */
export function policySelects(p: Policy, pod: Pick<PodInfo, "namespace" | "labels">): boolean {
  return p.namespace === pod.namespace && selects(p.podSelector, pod.labels);
}

/** The rules of one direction (none when the policy does not have that type: it neither isolates nor allows). */
export function rulesOf(p: Policy, d: Direction): readonly PolicyRule[] {
  if (!policyTypes(p).includes(d)) return [];
  return (d === "Ingress" ? p.ingress : p.egress) ?? [];
}

/** Pods by namespace (peerPods looks at the selected namespaces' pods only). */
export function podsByNamespace(pods: readonly PodInfo[]): Map<string, PodInfo[]> {
  const m = new Map<string, PodInfo[]>();
  for (const p of pods) {
    const l = m.get(p.namespace);
    if (l) l.push(p);
    else m.set(p.namespace, [p]);
  }
  return m;
}

/** The pods a peer with a pod or namespace selector names (none for an ipBlock peer). */
export function peerPods(peer: PolicyPeer, policyNs: string, pods: readonly PodInfo[] | ReadonlyMap<string, readonly PodInfo[]>, nsLabels: ReadonlyMap<string, Readonly<Record<string, string>>>): PodInfo[] {
  if (peer.ipBlock || (!peer.podSelector && !peer.namespaceSelector)) return [];
  const byNs = pods instanceof Map ? (pods as ReadonlyMap<string, readonly PodInfo[]>) : podsByNamespace(pods as readonly PodInfo[]);
  const namespaces = peer.namespaceSelector ? [...byNs.keys()].filter((n) => selects(peer.namespaceSelector, nsLabels.get(n) ?? {})) : [policyNs];
  return namespaces.flatMap((n) => (byNs.get(n) ?? []).filter((pod) => selects(peer.podSelector, pod.labels)));
}

/** The protocol of a port entry (TCP by default). */
export function protocolOf(p: PolicyPort): PolicyProtocol {
  return p.protocol ?? "TCP";
}

/** A resolved port entry: a protocol and an inclusive range, or the whole protocol when `from` is absent. */
export interface PortRange {
  protocol: PolicyProtocol;
  from?: number;
  to?: number;
}

/**
 * A port entry resolved for one pod (the destination): a number (with endPort a range), the whole protocol
 * when no port is named, a named port when the pod has a container port of that name and protocol, else
 * nothing.
 */
export function resolvePort(p: PolicyPort, pod: Pick<PodInfo, "ports"> | undefined): PortRange | undefined {
  const protocol = protocolOf(p);
  if (p.port === undefined) return { protocol };
  if (typeof p.port === "number") return { protocol, from: p.port, to: Math.max(p.port, p.endPort ?? p.port) };
  const named = pod?.ports.find((c) => c.name === p.port && c.protocol === protocol);
  return named ? { protocol, from: named.port, to: named.port } : undefined;
}

/** True when the port entries name a port by name (resolved per destination pod). */
export function hasNamedPort(ports: readonly PolicyPort[] | undefined): boolean {
  return (ports ?? []).some((p) => typeof p.port === "string");
}

/** An ipBlock as prefixes: its CIDR less every except, as disjoint prefixes (`A.B.C.D/len`). */
export function ipBlockPrefixes(cidr: string, except: readonly string[] = []): string[] {
  const c = parseCidr(cidr);
  if (c.family !== 4) return [];
  const ex = except.map(parseCidr).filter((e) => e.family === 4);
  const out: string[] = [];
  const walk = (base: number, len: number): void => {
    const text = `${ipText(base)}/${len}`;
    if (ex.some((e) => e.prefix <= len && cidrContains(e, ipText(base)))) return; // wholly excepted
    if (!ex.some((e) => cidrsOverlap(e, text))) return void out.push(text);
    const half = 2 ** (31 - len);
    walk(base, len + 1);
    walk(base + half, len + 1);
  };
  walk(Number(c.base.value), c.prefix);
  return out;
}

function ipText(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

/** An inclusive port range as aligned (value, mask) blocks, fewest first to last. */
export function rangeMasks(from: number, to: number): { value: number; mask: number }[] {
  const out: { value: number; mask: number }[] = [];
  for (let lo = from; lo <= to; ) {
    let size = 1;
    while (size < 0x10000 && lo % (size * 2) === 0 && lo + size * 2 - 1 <= to) size *= 2;
    out.push({ value: lo, mask: 0xffff & ~(size - 1) });
    lo += size;
  }
  return out;
}
