// The OpenFlow pipeline as data: named tables in order, priorities, registers and the cookie layout.

/**
 * Tables, in the order a packet walks them.
 * - Classifier: who sent it (a pod, the tunnel, the node's gateway port).
 * - SpoofGuard: pods send only with their own MAC and IP.
 * - ArpResponder: ARP is answered locally; no ARP broadcast leaves the node. A local pod's packet to a
 *   ClusterIP the agent implements (lib/dataplane/services.ts) is looked up in the zone with ct(nat), so a
 *   connection's packets after the first are DNAT'd to its endpoint here.
 * - ServiceLB, ServiceDNAT (entered from ArpResponder; numbered past EgressRule, they come back to EgressTrack
 *   by resubmit and ct's recirculation): a new connection to ClusterIP:port is hashed onto one ready endpoint
 *   (multipath) and committed with its DNAT (ct_mark Service); egress policy and the segment check then see
 *   the endpoint, never the ClusterIP. A pod that picked itself (hairpin), a Service without ready endpoints
 *   and a port the agent does not implement go on to the node, where kube-proxy's rules answer.
 * - FromNode: the node's ARP requests reach its pods (and are answered for peers' pod ranges).
 * - Conntrack: IP from the node or the tunnel is looked up in ovsplane's conntrack zone.
 * - ConntrackState: connections entering from the gateway (the node's own, Services DNAT'd by
 *   kube-proxy, NodePorts) are committed and marked FromNode; their replies arriving over the tunnel go
 *   back to the node, whose conntrack undoes its NAT.
 * - L3Forwarding: where a packet goes (a local pod, a peer node, the node).
 * - PodConntrack, PodReply: a pod's packet for a local pod is looked up too, and a reply of a
 *   connection the node started goes back to the node. A pod's packets to the node or to other nodes
 *   need no lookup (the node, or the other node, does it).
 * - SegmentCheck: micro-segmentation; only same-segment, global-segment or node traffic reaches a pod.
 * - EgressTrack, EgressRule: NetworkPolicy on a local pod's packets (lib/policy/compile.ts): a pod some
 *   policy selects is looked up in conntrack; established and related pass, a new connection of an
 *   egress-isolated pod passes only by a rule; what passes is marked for commit (PolicyFlags).
 * - TunnelOut: a connection marked for commit leaving for another node is committed there.
 * - IngressRule: NetworkPolicy on packets to a local pod: established, related and the node's own
 *   traffic pass; a new connection to an ingress-isolated pod passes only by a rule; what passes to a
 *   selected pod is committed. It only drops or continues to SegmentCheck: a policy narrows what the
 *   segments allow, never more.
 */
export const Table = {
  Classifier: 0,
  SpoofGuard: 10,
  ArpResponder: 20,
  EgressTrack: 21,
  EgressRule: 22,
  ServiceLB: 23,
  ServiceDNAT: 24,
  FromNode: 25,
  Conntrack: 27,
  ConntrackState: 28,
  L3Forwarding: 30,
  TunnelOut: 31,
  PodConntrack: 35,
  PodReply: 36,
  IngressRule: 37,
  SegmentCheck: 40,
} as const;

/**
 * Priorities of the policy tables: established and node traffic pass above every rule; a rule that allows
 * everything to or from a pod above the conjunctive rules; an isolated pod's drop below them (a conjunction
 * that does not complete falls through to it); the commit of a selected pod's allowed traffic below that.
 */
export const PolicyPriority = {
  Pass: 300,
  AllowAll: 210,
  Rule: 200,
  Default: 100,
  Commit: 50,
  Miss: 0,
} as const;

/** Named priorities. */
export const Priority = {
  Miss: 0,
  ToNode: 50,
  Peer: 100,
  TunnelGuard: 150,
  Normal: 200,
  Source: 250,
  Responder: 300,
} as const;

/**
 * Registers, by number (match `reg<n>`, slice `NXM_NX_REG<n>[]`: one name, spelled by lib/ovs/flow.ts).
 * - SrcSegment: the sender's segment (VNI); 0 means the node itself.
 * - DstSegment: the destination pod's segment.
 * - DstPort: the destination pod's OpenFlow port.
 * - Scratch: a temporary (swapping ARP addresses).
 * - Endpoint: the endpoint a Service's new connection was hashed onto (0-based, ServiceLB to ServiceDNAT).
 */
export const Reg = {
  SrcSegment: 0,
  DstSegment: 1,
  DstPort: 2,
  PolicyFlags: 3,
  Scratch: 4,
  Endpoint: 5,
} as const;

/** Bits of Reg.PolicyFlags. Commit: a policy check passed a new connection; commit it before it leaves. */
export const PolicyFlag = { Commit: 0x1 } as const;

/** The conntrack zone of ovsplane's connections. */
export const CT_ZONE = 0x6f76;

/**
 * ct_mark bits. FromNode: the connection entered the bridge from the gateway (the node started it).
 * Service: a local pod's connection to a ClusterIP, DNAT'd here; its replies are un-DNAT'd by ct(nat) here.
 */
export const CtMark = { FromNode: 0x1, Service: 0x2 } as const;

/**
 * The tunnel VNI of the node's own traffic (and traffic the node forwards for non-pods): accepted only
 * from known peers, and no pod can send with it (a pod's VNI is its segment, 1 or more).
 */
export const NODE_VNI = 0;

/** The VNI bits of tun_id and of the segment registers. */
export const VNI_BITS = 24;

/**
 * What a flow belongs to, stored in bits 40..47 of its cookie. Bridge-wide flows (Node, Segment,
 * Peer) are the same whichever network writes them, so they carry no network: one owner, no
 * last-writer-wins between networks on one bridge. Network flows carry an 8-bit network id.
 * - Node: the pipeline's defaults (table misses, gateway and tunnel classification), id 0.
 * - Segment: lets pods of one segment reach each other, id = VNI.
 * - Peer: accepts tunnel traffic from one peer node, id = its underlay IPv4.
 * - Pod: one attachment's flows, id = attachment id.
 * - Gateway: a network's gateway ARP, id = network id << 32.
 * - Route: a network's route to one peer's pod range, id = network id << 32 | peer IPv4.
 * - Global: a network's global segment (reaches and is reached by every segment), id = network id << 32 | VNI.
 * - Policy: NetworkPolicy flows (lib/policy/compile.ts): id 0 the conjunctive clauses rules share, 1 << 32 |
 *   hash of namespace/name one policy's verdicts, 2 << 32 | OpenFlow port one selected pod's flows.
 * - Service: one Service's flows (lib/dataplane/services.ts), id = hash of namespace/name.
 */
export const CookieKind = {
  Node: 1,
  Segment: 2,
  Peer: 3,
  Pod: 4,
  Gateway: 5,
  Route: 6,
  Global: 7,
  Policy: 8,
  Service: 9,
} as const;

/** One of CookieKind's values. */
export type CookieKindValue = (typeof CookieKind)[keyof typeof CookieKind];

/** Bits 48..63 of every ovsplane cookie ("ov"): flows without it are not ours. */
export const COOKIE_MAGIC = 0x6f76n;

const ID_BITS = 40n;
const ID_MASK = (1n << ID_BITS) - 1n;

/** A cookie: magic, kind, and a 40-bit id. */
export function cookie(kind: CookieKindValue, id: bigint): bigint {
  return (COOKIE_MAGIC << 48n) | (BigInt(kind) << ID_BITS) | (id & ID_MASK);
}

/** The mask that selects one exact cookie. */
export const EXACT_MASK = (1n << 64n) - 1n;
/** The mask that selects all cookies of one kind. */
export const KIND_MASK = ~ID_MASK & EXACT_MASK;
/** The mask that selects every ovsplane cookie. */
export const MAGIC_MASK = 0xffffn << 48n;
/** Mask selecting one kind of one network (kind bits and the 8-bit network id in bits 32..39). */
export const NETWORK_KIND_MASK = KIND_MASK | (0xffn << 32n);

/** Reads the kind and id back from a cookie, or undefined when it is not ours. */
export function parseCookie(c: bigint): { kind: number; id: bigint } | undefined {
  if (c >> 48n !== COOKIE_MAGIC) return undefined;
  return { kind: Number((c >> ID_BITS) & 0xffn), id: c & ID_MASK };
}

/** Cookie of the bridge-wide pipeline defaults. */
export const NODE_COOKIE = cookie(CookieKind.Node, 0n);

/** Cookie of the flow for one segment (bridge-wide). */
export function segmentCookie(vni: number): bigint {
  return cookie(CookieKind.Segment, BigInt(vni));
}

/** Cookie of the flow accepting tunnel traffic from one peer node (bridge-wide), by its IPv4 as a number. */
export function peerCookie(ip: bigint): bigint {
  return cookie(CookieKind.Peer, ip);
}

/** Cookie of one pod attachment's flows. */
export function podCookie(id: bigint): bigint {
  return cookie(CookieKind.Pod, id);
}

/** Cookie of a network's gateway flows. */
export function gatewayCookie(netId: bigint): bigint {
  return cookie(CookieKind.Gateway, netId << 32n);
}

/** Cookie of a network's route to one peer's pod range. */
export function routeCookie(netId: bigint, ip: bigint): bigint {
  return cookie(CookieKind.Route, (netId << 32n) | ip);
}

/** Cookie of a network's flows for one global segment. */
export function globalCookie(netId: bigint, vni: number): bigint {
  return cookie(CookieKind.Global, (netId << 32n) | BigInt(vni));
}
