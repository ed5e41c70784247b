// The OpenFlow pipeline as data: named tables in order, priorities, registers and cookies.

/**
 * Tables, in the order a packet walks them.
 * - Classifier: who sent it (a pod, the tunnel, the node's gateway port).
 * - SpoofGuard: pods send only with their own MAC and IP.
 * - ArpResponder: ARP is answered locally; no ARP broadcast leaves the node.
 * - FromNode: the node's ARP requests reach its pods.
 * - L3Forwarding: where a packet goes (a local pod, a peer node, the node).
 * - SegmentCheck: micro-segmentation; only same-segment (or node) traffic reaches a pod.
 */
export const Table = {
  Classifier: 0,
  SpoofGuard: 10,
  ArpResponder: 20,
  FromNode: 25,
  L3Forwarding: 30,
  SegmentCheck: 40,
} as const;

/** Named priorities. */
export const Priority = {
  Miss: 0,
  ToNode: 50,
  Peer: 100,
  TunnelGuard: 150,
  Normal: 200,
  Responder: 300,
} as const;

/**
 * Registers.
 * - SrcSegment (reg0): the sender's segment (VNI); 0 means the node itself.
 * - DstSegment (reg1): the destination pod's segment.
 * - DstPort (reg2): the destination pod's OpenFlow port.
 */
export const Reg = {
  SrcSegment: "NXM_NX_REG0[]",
  DstSegment: "NXM_NX_REG1[]",
  DstPort: "NXM_NX_REG2[]",
} as const;

/** What a flow belongs to, stored in bits 40..47 of its cookie. */
export const CookieKind = {
  Node: 1,
  Segment: 2,
  Peer: 3,
  Pod: 4,
} as const;

export type CookieKindValue = (typeof CookieKind)[keyof typeof CookieKind];

/** Bits 48..63 of every ovsplane cookie ("ov"): flows without it are not ours. */
export const COOKIE_MAGIC = 0x6f76n;

const ID_BITS = 40n;
const ID_MASK = (1n << ID_BITS) - 1n;

/** A cookie: magic, kind, and a 40-bit id (segment VNI, peer IPv4, pod hash, 0 for the node). */
export function cookie(kind: CookieKindValue, id: bigint): bigint {
  return (COOKIE_MAGIC << 48n) | (BigInt(kind) << ID_BITS) | (id & ID_MASK);
}

/** The mask that selects one exact cookie. */
export const EXACT_MASK = (1n << 64n) - 1n;
/** The mask that selects all cookies of one kind. */
export const KIND_MASK = ~ID_MASK & EXACT_MASK;

/** Reads the kind and id back from a cookie, or undefined when it is not ours. */
export function parseCookie(c: bigint): { kind: number; id: bigint } | undefined {
  if (c >> 48n !== COOKIE_MAGIC) return undefined;
  return { kind: Number((c >> ID_BITS) & 0xffn), id: c & ID_MASK };
}

/** One flow: table, priority, cookie, match fields and actions, as ovs-ofctl writes them. */
export interface Flow {
  table: number;
  priority: number;
  cookie: bigint;
  match: readonly string[];
  actions: readonly string[];
}

/** A change in a bundle: add (or replace) a flow, or delete every flow with a cookie under a mask. */
export type FlowOp = { op: "add"; flow: Flow } | { op: "delete"; cookie: bigint; mask: bigint };

/** Hex with 0x, as OpenFlow tools print cookies. */
export function hex(n: bigint): string {
  return `0x${n.toString(16)}`;
}

/** Mask selecting one kind of one network (kind bits and the 8-bit network id in bits 32..39). */
export const NETWORK_KIND_MASK = KIND_MASK | (0xffn << 32n);

/** Cookie of a network's node-wide flows. */
export function nodeCookie(netId: bigint): bigint {
  return cookie(CookieKind.Node, netId << 32n);
}

/** Cookie of a network's flow for one segment. */
export function segmentCookie(netId: bigint, vni: number): bigint {
  return cookie(CookieKind.Segment, (netId << 32n) | BigInt(vni));
}

/** Cookie of a network's flows towards one peer node (by its IPv4 as a 32-bit number). */
export function peerCookie(netId: bigint, ip: bigint): bigint {
  return cookie(CookieKind.Peer, (netId << 32n) | ip);
}

/** Cookie of one pod attachment's flows. */
export function podCookie(id: bigint): bigint {
  return cookie(CookieKind.Pod, id);
}

/** Mask selecting one segment's flow whichever network wrote it (networks on one bridge share it). */
export const SEGMENT_ANY_NETWORK_MASK = KIND_MASK | 0xffffffffn;
