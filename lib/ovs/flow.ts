// OpenFlow flows as typed data: match fields, actions, flow changes; as ovs-ofctl text in flow-text.ts, as OpenFlow bytes in oxm.ts.

/** How a field's value is written: a number, a MAC, an IPv4 address. */
export type FieldKind = "int" | "mac" | "ipv4";

/** One field of our vocabulary: its width, how it prints, its OXM/NXM identity and its names in each syntax. */
export interface FieldDef {
  readonly bytes: number;
  readonly kind: FieldKind;
  /** OXM class and field number (the NXM_NX_* / OXM_OF_* header without length). */
  readonly oxmClass: number;
  readonly oxmField: number;
  /** Name in `move:`/`load:`/`output:` slices, as ovs-ofctl prints it (e.g. NXM_NX_REG0). */
  readonly nxm: string;
  /** Name after `set_field:V->` (e.g. eth_src). */
  readonly setName: string;
  /** A mask is allowed in a match. */
  readonly maskable: boolean;
  /** The ethertype a match on it needs (OXM prerequisite). */
  readonly needs?: number;
}

/** Ethertypes we match. */
export const EthType = { IPv4: 0x0800, ARP: 0x0806 } as const;

/** IP protocols whose destination port we match, with the field that holds it. */
export const IpProto = { TCP: 6, UDP: 17, SCTP: 132 } as const;

/** The destination-port field of each IP protocol (a match on it needs `nw_proto` exactly). */
export const PORT_FIELD = { [IpProto.TCP]: "tcp_dst", [IpProto.UDP]: "udp_dst", [IpProto.SCTP]: "sctp_dst" } as const;

const f = (bytes: number, kind: FieldKind, oxmClass: number, oxmField: number, nxm: string, setName: string, maskable: boolean, needs?: number): FieldDef =>
  needs === undefined ? { bytes, kind, oxmClass, oxmField, nxm, setName, maskable } : { bytes, kind, oxmClass, oxmField, nxm, setName, maskable, needs };

const regs = Object.fromEntries(
  Array.from({ length: 16 }, (_, k) => [`reg${k}`, f(4, "int", 0x0001, k, `NXM_NX_REG${k}`, `reg${k}`, true)]),
) as Record<RegName, FieldDef>;

/** Register numbers NXM offers. */
export type RegIndex = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15;
/** A register's match name. */
export type RegName = `reg${RegIndex}`;

/** Every field a match, set_field, load, move or output can name, keyed by its match name (ovs-ofctl's). */
export const FIELDS = {
  in_port: f(4, "int", 0x8000, 0, "NXM_OF_IN_PORT", "in_port", false),
  dl_dst: f(6, "mac", 0x8000, 3, "NXM_OF_ETH_DST", "eth_dst", true),
  dl_src: f(6, "mac", 0x8000, 4, "NXM_OF_ETH_SRC", "eth_src", true),
  dl_type: f(2, "int", 0x8000, 5, "NXM_OF_ETH_TYPE", "eth_type", false),
  nw_src: f(4, "ipv4", 0x8000, 11, "NXM_OF_IP_SRC", "ip_src", true, EthType.IPv4),
  nw_dst: f(4, "ipv4", 0x8000, 12, "NXM_OF_IP_DST", "ip_dst", true, EthType.IPv4),
  nw_proto: f(1, "int", 0x8000, 10, "NXM_OF_IP_PROTO", "ip_proto", false, EthType.IPv4),
  tcp_dst: f(2, "int", 0x8000, 14, "NXM_OF_TCP_DST", "tcp_dst", true, EthType.IPv4),
  udp_dst: f(2, "int", 0x8000, 16, "NXM_OF_UDP_DST", "udp_dst", true, EthType.IPv4),
  sctp_dst: f(2, "int", 0x8000, 18, "OXM_OF_SCTP_DST", "sctp_dst", true, EthType.IPv4),
  arp_op: f(2, "int", 0x8000, 21, "NXM_OF_ARP_OP", "arp_op", false, EthType.ARP),
  arp_spa: f(4, "ipv4", 0x8000, 22, "NXM_OF_ARP_SPA", "arp_spa", true, EthType.ARP),
  arp_tpa: f(4, "ipv4", 0x8000, 23, "NXM_OF_ARP_TPA", "arp_tpa", true, EthType.ARP),
  arp_sha: f(6, "mac", 0x8000, 24, "NXM_NX_ARP_SHA", "arp_sha", true, EthType.ARP),
  arp_tha: f(6, "mac", 0x8000, 25, "NXM_NX_ARP_THA", "arp_tha", true, EthType.ARP),
  tun_id: f(8, "int", 0x8000, 38, "NXM_NX_TUN_ID", "tun_id", true),
  tun_src: f(4, "ipv4", 0x0001, 31, "NXM_NX_TUN_IPV4_SRC", "tun_src", true),
  tun_dst: f(4, "ipv4", 0x0001, 32, "NXM_NX_TUN_IPV4_DST", "tun_dst", true),
  ct_state: f(4, "int", 0x0001, 105, "NXM_NX_CT_STATE", "ct_state", true),
  ct_zone: f(2, "int", 0x0001, 106, "NXM_NX_CT_ZONE", "ct_zone", false),
  ct_mark: f(4, "int", 0x0001, 107, "NXM_NX_CT_MARK", "ct_mark", true),
  ...regs,
  conj_id: f(4, "int", 0x0001, 37, "NXM_NX_CONJ_ID", "conj_id", false),
} as const satisfies Record<string, FieldDef>;

/** A field's match name. */
export type FieldName = keyof typeof FIELDS;

/** The order fields print in a match (and the canonical order of a Match's keys). */
export const FIELD_ORDER: readonly FieldName[] = Object.keys(FIELDS) as FieldName[];

/** A matched value; `mask` is absent when every bit is matched. Canonical: value has no bits outside the mask. */
export interface MatchValue {
  readonly value: bigint;
  readonly mask?: bigint;
}

/** A match: field → value. An empty match matches every packet. */
export type Match = { readonly [K in FieldName]?: MatchValue };

/** Bits `ofs`..`ofs+nbits-1` of a field (a whole field when ofs 0 and nbits its width). */
export interface Slice {
  readonly field: FieldName;
  readonly ofs: number;
  readonly nbits: number;
}

/** Output port that sends a packet back where it came from (OFPP_IN_PORT). */
export const IN_PORT = 0xfffffff8;

/**
 * One action. `load` writes registers (and other fields by slice), `set_field` writes a whole
 * non-register field; an empty action list drops the packet; `goto_table` comes last.
 */
export type Action =
  | { readonly type: "output"; readonly port: number }
  | { readonly type: "output_reg"; readonly src: Slice }
  | { readonly type: "load"; readonly dst: Slice; readonly value: bigint }
  | { readonly type: "move"; readonly src: Slice; readonly dst: Slice }
  | { readonly type: "set_field"; readonly field: FieldName; readonly value: bigint }
  | { readonly type: "goto_table"; readonly table: number }
  /** Run the packet through `table` now and come back (NXAST_RESUBMIT_TABLE, in_port unchanged): also to an earlier table. */
  | { readonly type: "resubmit"; readonly table: number }
  | ConjunctionAction
  | ConntrackAction
  | MultipathAction;

/**
 * Choose one of `nLinks` links by a hash of the packet (NXAST_MULTIPATH) and write its number (0..nLinks-1)
 * to `dst`: fields symmetric_l3l4+udp (addresses, IP protocol, TCP/UDP/SCTP ports, the same both ways),
 * basis 0, algorithm hrw (highest random weight: a link's removal moves only the flows it had).
 */
export interface MultipathAction {
  readonly type: "multipath";
  readonly nLinks: number;
  readonly dst: Slice;
}

/**
 * One clause of a conjunctive match (NXAST_CONJUNCTION): the flow matches dimension `clause` (1-based) of
 * `nClauses` of conjunction `id`; the conjunction matches when a flow of every dimension does, and then the
 * flow matching `conj_id=id` runs. A flow with it has only conjunction actions.
 */
export interface ConjunctionAction {
  readonly type: "conjunction";
  readonly id: number;
  readonly clause: number;
  readonly nClauses: number;
}

/**
 * Send the packet through the connection tracker (NXAST_CT): look it up in `zone`, and with `commit`
 * record the connection, running `exec` (set_field on ct_mark) on the new entry; with `table` the
 * packet is looked up and continues, tracked, in that table (recirculation).
 */
export interface ConntrackAction {
  readonly type: "ct";
  readonly commit: boolean;
  readonly zone: number;
  readonly table?: number;
  /** NXAST_NAT (the first nested action): `{}` applies the connection's NAT (un-DNAT of replies); `dst` sets it on a commit. */
  readonly nat?: NatSpec;
  readonly exec?: readonly Action[];
}

/** What a ct action's nat does: nothing more than the connection's own NAT, or a destination NAT to ip[:port]. */
export interface NatSpec {
  readonly dst?: { readonly ip: bigint; readonly port?: number };
}

/** Connection-tracking states (bits of ct_state). */
export const CtState = { New: 0x01, Est: 0x02, Rel: 0x04, Rpl: 0x08, Inv: 0x10, Trk: 0x20 } as const;

/** One flow: table, priority, cookie, match and actions (none = drop). */
export interface Flow {
  readonly table: number;
  readonly priority: number;
  readonly cookie: bigint;
  readonly match: Match;
  readonly actions: readonly Action[];
}

/** Counters of a flow read back from the switch. */
export interface FlowStats {
  readonly packets: bigint;
  readonly bytes: bigint;
  readonly durationSec: number;
}

/**
 * A change in a bundle: add (or replace) a flow; delete every flow whose cookie matches under a mask;
 * or delete exactly one flow (same table, priority and match, and its cookie).
 */
export type FlowOp =
  | { readonly op: "add"; readonly flow: Flow }
  | { readonly op: "delete"; readonly cookie: bigint; readonly mask: bigint }
  | { readonly op: "delete_strict"; readonly flow: Flow };

// ---- values ------------------------------------------------------------------------------------

/** All ones in a field's width. */
export function fullMask(name: FieldName): bigint {
  return (1n << BigInt(FIELDS[name].bytes * 8)) - 1n;
}

/** An IPv4 address as a 32-bit number; throws naming the text when it is not one. */
export function ipv4(text: string): bigint {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) throw new Error(`"${text}" is not an IPv4 address`);
  return m.slice(1).reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

/** A MAC address as a 48-bit number; throws naming the text when it is not one. */
export function mac(text: string): bigint {
  if (!/^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/.test(text)) throw new Error(`"${text}" is not a MAC address`);
  return BigInt(`0x${text.replace(/:/g, "")}`);
}

/** Prints a value of a kind. */
export function formatValue(kind: FieldKind, v: bigint): string {
  if (kind === "int") return v.toString();
  if (kind === "mac") return v.toString(16).padStart(12, "0").replace(/(..)(?!$)/g, "$1:");
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join(".");
}

/** An exact match value. */
export function exact(value: bigint | number): MatchValue {
  return { value: BigInt(value) };
}

/** A masked match value, canonical (exact when the mask is full, value under the mask). */
export function masked(name: FieldName, value: bigint, mask: bigint): MatchValue {
  const full = fullMask(name);
  const m = mask & full;
  return m === full ? { value: value & full } : { value: value & m, mask: m };
}

// ---- match and action constructors -----------------------------------------------------------------

/** Match constructors: combine with `{ ...a, ...b }` or match(). */
export const on = {
  inPort: (port: number): Match => ({ in_port: exact(port) }),
  ip: (): Match => ({ dl_type: exact(EthType.IPv4) }),
  arp: (): Match => ({ dl_type: exact(EthType.ARP) }),
  ethSrc: (m: string): Match => ({ dl_src: exact(mac(m)) }),
  /** IPv4 source, `A.B.C.D` or `A.B.C.D/len`; adds the `ip` prerequisite. */
  ipSrc: (cidr: string): Match => ({ ...on.ip(), nw_src: prefix("nw_src", cidr) }),
  /** IPv4 destination, `A.B.C.D` or `A.B.C.D/len`; adds the `ip` prerequisite. */
  ipDst: (cidr: string): Match => ({ ...on.ip(), nw_dst: prefix("nw_dst", cidr) }),
  arpOp: (op: number): Match => ({ ...on.arp(), arp_op: exact(op) }),
  arpSpa: (ip: string): Match => ({ ...on.arp(), arp_spa: exact(ipv4(ip)) }),
  /** ARP target, `A.B.C.D` or `A.B.C.D/len`; adds the `arp` prerequisite. */
  arpTpa: (cidr: string): Match => ({ ...on.arp(), arp_tpa: prefix("arp_tpa", cidr) }),
  arpSha: (m: string): Match => ({ ...on.arp(), arp_sha: exact(mac(m)) }),
  tunId: (id: number | bigint): Match => ({ tun_id: exact(id) }),
  tunSrc: (ip: string): Match => ({ tun_src: exact(ipv4(ip)) }),
  reg: (reg: number, value: number | bigint): Match => ({ [regName(reg)]: exact(value) }),
  /** Register bits under a mask. */
  regBits: (reg: number, value: number, mask: number): Match => ({ [regName(reg)]: masked(regName(reg), BigInt(value), BigInt(mask)) }),
  /** An IP protocol (`nw_proto`); adds the `ip` prerequisite. */
  proto: (proto: number): Match => ({ ...on.ip(), nw_proto: exact(proto) }),
  /** A destination port (or a port range's aligned block, under a mask) of TCP, UDP or SCTP; adds the protocol. */
  dstPort: (proto: keyof typeof PORT_FIELD, port: number, mask = 0xffff): Match => ({ ...on.proto(proto), [PORT_FIELD[proto]]: masked(PORT_FIELD[proto], BigInt(port), BigInt(mask)) }),
  /** The conjunction a conjunctive match completed. */
  conjId: (id: number): Match => ({ conj_id: exact(id) }),
  /** ct_state with the given flags set (`+`) and others cleared (`-`); unnamed flags are not matched. */
  ctState: (set: readonly (keyof typeof CtState)[], cleared: readonly (keyof typeof CtState)[] = []): Match => {
    const bits = (l: readonly (keyof typeof CtState)[]) => l.reduce((a, k) => a | BigInt(CtState[k]), 0n);
    return { ct_state: masked("ct_state", bits(set), bits(set) | bits(cleared)) };
  },
  /** ct_mark bits under a mask. */
  ctMark: (value: number, mask: number): Match => ({ ct_mark: masked("ct_mark", BigInt(value), BigInt(mask)) }),
} as const;

/** One match from parts (later parts win on the same field). */
export function match(...parts: Match[]): Match {
  return Object.assign({}, ...parts) as Match;
}

function prefix(name: "nw_src" | "nw_dst" | "arp_tpa", cidr: string): MatchValue {
  const [ip, len] = cidr.split("/");
  const bits = len === undefined ? 32 : Number(len);
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`"${cidr}" is not an IPv4 prefix`);
  return masked(name, ipv4(ip!), ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - bits)) - 1n));
}

/** The match name of register k. */
export function regName(k: number): FieldName {
  if (!Number.isInteger(k) || k < 0 || k > 15) throw new Error(`register ${k} outside 0..15`);
  return `reg${k}` as FieldName;
}

/** A slice of a field: the whole field, or bits from..to inclusive. */
export function slice(field: FieldName, from?: number, to?: number): Slice {
  const width = FIELDS[field].bytes * 8;
  if (from === undefined) return { field, ofs: 0, nbits: width };
  const end = to ?? from;
  if (from < 0 || end < from || end >= width) throw new Error(`bits ${from}..${end} outside ${field} (${width} bits)`);
  return { field, ofs: from, nbits: end - from + 1 };
}

/** Action constructors. */
export const act = {
  output: (port: number): Action => ({ type: "output", port }),
  inPort: (): Action => ({ type: "output", port: IN_PORT }),
  outputReg: (reg: number): Action => ({ type: "output_reg", src: slice(regName(reg)) }),
  load: (dst: Slice, value: number | bigint): Action => ({ type: "load", dst, value: BigInt(value) }),
  loadReg: (reg: number, value: number | bigint): Action => ({ type: "load", dst: slice(regName(reg)), value: BigInt(value) }),
  move: (src: Slice, dst: Slice): Action => ({ type: "move", src, dst }),
  setMac: (field: "dl_src" | "dl_dst" | "arp_sha", m: string): Action => ({ type: "set_field", field, value: mac(m) }),
  setIPv4: (field: "arp_spa" | "tun_dst" | "nw_src" | "nw_dst", ip: string): Action => ({ type: "set_field", field, value: ipv4(ip) }),
  setInt: (field: "arp_op" | "tun_id", v: number | bigint): Action => ({ type: "set_field", field, value: BigInt(v) }),
  goto: (table: number): Action => ({ type: "goto_table", table }),
  resubmit: (table: number): Action => ({ type: "resubmit", table }),
  /** Look the packet up in a conntrack zone and continue, tracked, in `table`. */
  ctLookup: (zone: number, table: number): Action => ({ type: "ct", commit: false, zone, table }),
  /** Commit the connection in a zone, its ct_mark left as it is. */
  ctCommitOnly: (zone: number): Action => ({ type: "ct", commit: true, zone }),
  /** Look the packet up in a zone, applying the NAT of its connection (replies un-NAT'd), and continue in `table`. */
  ctNat: (zone: number, table: number): Action => ({ type: "ct", commit: false, zone, table, nat: {} }),
  /** Commit a new connection with a destination NAT to ip[:port], ct_mark set, and continue in `table`. */
  ctDnat: (o: { zone: number; table: number; ip: string; port?: number; mark: number }): Action => ({
    type: "ct", commit: true, zone: o.zone, table: o.table,
    nat: { dst: o.port === undefined ? { ip: ipv4(o.ip) } : { ip: ipv4(o.ip), port: o.port } },
    exec: [{ type: "set_field", field: "ct_mark", value: BigInt(o.mark) }],
  }),
  /** Hash the packet (symmetric L3/L4) onto one of nLinks, its number into a register. */
  multipath: (nLinks: number, reg: number): Action => ({ type: "multipath", nLinks, dst: slice(regName(reg)) }),
  /** Clause `clause` of `nClauses` of conjunction `id`. */
  conjunction: (id: number, clause: number, nClauses: number): Action => ({ type: "conjunction", id, clause, nClauses }),
  /** Commit the connection in a zone, setting ct_mark on the new entry. */
  ctCommit: (zone: number, mark: number): Action => ({ type: "ct", commit: true, zone, exec: [{ type: "set_field", field: "ct_mark", value: BigInt(mark) }] }),
} as const;
