// Typed matches and actions (lib/ovs/flow.ts) to OpenFlow 1.4 OXM/NXM bytes, byte for byte as ovs-ofctl writes them (oxm-decode.ts reads them back).
import { FIELDS, FIELD_ORDER, fullMask, PORT_FIELD, type Action, type FieldName, type Match, type MatchValue, type Slice } from "./flow.ts";

/** Nicira's experimenter id (NX_VENDOR_ID). */
export const NX_VENDOR_ID = 0x00002320;

/** Nicira action subtypes we write or read. */
export const NXAST = { RegMove: 6, RegLoad: 7, OutputReg: 15, OutputReg2: 32, RegLoad2: 33, Conjunction: 34, Ct: 35, Nat: 36, Multipath: 10, Resubmit: 14 } as const;

/** NXAST_NAT flags and range_present bits; NXAST_MULTIPATH's fields (symmetric_l3l4+udp) and algorithm (hrw). */
export const NX_NAT = { FlagDst: 2, Ipv4Min: 0x1, ProtoMin: 0x10 } as const;
export const NX_MP = { FieldsL3L4Udp: 3, AlgHrw: 2 } as const;

/** NXAST_CT: the commit flag, and the recirculation table meaning "none". */
export const NX_CT_F_COMMIT = 1;
export const NX_CT_RECIRC_NONE = 255;
/** OpenFlow 1.4 action and instruction types we write or read. */
export const OFPAT = { Output: 0, SetField: 25, Experimenter: 0xffff } as const;
export const OFPIT = { GotoTable: 1, ApplyActions: 4 } as const;

/** An OXM/NXM header: class (16 bits), field (7), has-mask (1), payload length (8). */
function header(cls: number, field: number, bytes: number, hasMask = false): number {
  return ((cls << 16) | (field << 9) | (hasMask ? 0x100 : 0) | (hasMask ? 2 * bytes : bytes)) >>> 0;
}

/**
 * Match fields in the order ovs-ofctl (nx_put_raw) writes them: Ethernet source before destination,
 * registers before the connection-tracking fields.
 */
const ENCODE_ORDER: readonly FieldName[] = (() => {
  const ct = FIELD_ORDER.filter((n) => n.startsWith("ct_"));
  const rest = FIELD_ORDER.filter((n) => !["in_port", "dl_src", "dl_dst"].includes(n) && !ct.includes(n));
  return ["in_port", "dl_src", "dl_dst", ...rest, ...ct];
})();

/**
 * NXM class and field of the fields move/load/output_reg name (ovs-ofctl writes the legacy NXM header
 * there); in_port has only a 16-bit NXM form, so its slices use the 32-bit OXM header.
 */
const NXM: Partial<Record<FieldName, readonly [number, number]>> = {
  dl_dst: [0, 1], dl_src: [0, 2], dl_type: [0, 3], nw_src: [0, 7], nw_dst: [0, 8], arp_op: [0, 15], arp_spa: [0, 16], arp_tpa: [0, 17],
  arp_sha: [1, 17], arp_tha: [1, 18], tun_id: [1, 16], tun_src: [1, 31], tun_dst: [1, 32],
  ...Object.fromEntries(Array.from({ length: 16 }, (_, k) => [`reg${k}`, [1, k] as const])),
};

/** The OXM header of a field in a match or set_field. */
const oxmHeader = (n: FieldName, hasMask = false) => header(FIELDS[n].oxmClass, FIELDS[n].oxmField, FIELDS[n].bytes, hasMask);
/** The header of a field in a slice (NXM when it has one of the same width). */
const sliceHeader = (n: FieldName) => (NXM[n] ? header(NXM[n]![0], NXM[n]![1], FIELDS[n].bytes) : oxmHeader(n));

/** Field of an OXM or NXM class and field number (both spellings decode; widths must agree). */
export const BY_ID = new Map<number, FieldName>();
for (const n of FIELD_ORDER) {
  BY_ID.set((FIELDS[n].oxmClass << 7) | FIELDS[n].oxmField, n);
  const x = NXM[n];
  if (x) BY_ID.set((x[0] << 7) | x[1], n);
}

export const isReg = (n: FieldName) => /^reg\d+$/.test(n);

// ---- bytes -------------------------------------------------------------------------------------------

/** `n` as a big-endian unsigned integer of `bytes` bytes. */
function be(n: bigint, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = bytes - 1; i >= 0; i--, n >>= 8n) b[i] = Number(n & 0xffn);
  return b;
}

/** A big-endian unsigned integer of the whole buffer. */
export function unbe(b: Buffer): bigint {
  return b.length ? BigInt(`0x${b.toString("hex")}`) : 0n;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** Zero bytes that round `len` up to a multiple of 8. */
function pad8(len: number): Buffer {
  return Buffer.alloc((8 - (len % 8)) % 8);
}

function fieldOf(n: string, what: string): FieldName {
  if (!Object.hasOwn(FIELDS, n)) throw new Error(`${what}: unsupported field "${n}"`);
  return n as FieldName;
}

function checkUint(v: bigint, bits: number, what: string): bigint {
  if (typeof v !== "bigint" || v < 0n || v >> BigInt(bits) !== 0n) throw new Error(`${what}: ${v} does not fit in ${bits} bits`);
  return v;
}

// ---- encoding ----------------------------------------------------------------------------------------

/**
 * Encodes a match as an OpenFlow 1.4 `ofp_match` (OXM type, padded to 8 bytes), fields in ovs-ofctl's
 * order. A full mask is written unmasked, a zero mask not at all (it matches everything). Throws an Error
 * naming the field when it is unknown, its value does not fit, it takes no mask, or its ethertype
 * prerequisite (`ip`/`arp`, dl_type) is not matched exactly.
 */
export function encodeMatch(match: Match): Buffer {
  for (const k of Object.keys(match)) fieldOf(k, "match");
  const parts: Buffer[] = [];
  for (const name of ENCODE_ORDER) {
    const v: MatchValue | undefined = match[name];
    if (!v) continue;
    const def = FIELDS[name];
    const what = `match ${name}`;
    const bits = def.bytes * 8;
    checkUint(v.value, bits, what);
    if (v.mask !== undefined && v.mask !== fullMask(name) && !def.maskable) throw new Error(`${what}: this field takes no mask`);
    if (def.needs !== undefined && (match.dl_type?.value !== BigInt(def.needs) || match.dl_type.mask !== undefined)) {
      throw new Error(`${what} needs "${def.needs === 0x0800 ? "ip" : "arp"}" (dl_type=0x${def.needs.toString(16)}) in the same match`);
    }
    const proto = Object.entries(PORT_FIELD).find(([, fld]) => fld === name)?.[0];
    if (proto !== undefined && (match.nw_proto?.value !== BigInt(proto) || match.nw_proto.mask !== undefined)) {
      throw new Error(`${what} needs nw_proto=${proto} in the same match`);
    }
    const mask = v.mask === undefined ? fullMask(name) : checkUint(v.mask, bits, what);
    if (mask === 0n) continue;
    if (mask === fullMask(name)) parts.push(u32(oxmHeader(name)), be(v.value, def.bytes));
    else parts.push(u32(oxmHeader(name, true)), be(v.value & mask, def.bytes), be(mask, def.bytes));
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([u16(1), u16(4 + body.length), body, pad8(4 + body.length)]);
}

/** `ofs_nbits` of a slice (offset << 6 | nbits - 1), checked against its field. */
export function ofsNbits(s: Slice, what: string): number {
  const width = FIELDS[fieldOf(s.field, what)].bytes * 8;
  if (!Number.isInteger(s.ofs) || !Number.isInteger(s.nbits) || s.ofs < 0 || s.nbits < 1 || s.ofs + s.nbits > width) {
    throw new Error(`${what}: bits ${s.ofs}..${s.ofs + s.nbits - 1} outside ${s.field} (${width} bits)`);
  }
  return (s.ofs << 6) | (s.nbits - 1);
}

/** A Nicira extension action: type 0xffff, length, NX_VENDOR_ID, subtype, body (padded to 8). */
function nxAction(subtype: number, body: Buffer): Buffer {
  const len = 10 + body.length;
  return Buffer.concat([u16(OFPAT.Experimenter), u16(len + pad8(len).length), u32(NX_VENDOR_ID), u16(subtype), body, pad8(len)]);
}

/** One action (not goto_table) as OpenFlow 1.4 / Nicira bytes. */
function encodeAction(a: Action): Buffer {
  const what = `action ${a.type}`;
  switch (a.type) {
    case "output":
      checkUint(BigInt(a.port), 32, what);
      return Buffer.concat([u16(OFPAT.Output), u16(16), u32(a.port), u16(0), Buffer.alloc(6)]);
    case "output_reg":
      return nxAction(NXAST.OutputReg, Buffer.concat([u16(ofsNbits(a.src, what)), u32(sliceHeader(a.src.field)), u16(0xffff)]));
    case "load": {
      const on = ofsNbits(a.dst, what);
      return nxAction(NXAST.RegLoad, Buffer.concat([u16(on), u32(sliceHeader(a.dst.field)), be(checkUint(a.value, a.dst.nbits, what), 8)]));
    }
    case "move": {
      const [src, dst] = [ofsNbits(a.src, what), ofsNbits(a.dst, what)];
      if (a.src.nbits !== a.dst.nbits) throw new Error(`${what}: source is ${a.src.nbits} bits, destination ${a.dst.nbits}`);
      return nxAction(NXAST.RegMove, Buffer.concat([u16(a.src.nbits), u16(src >> 6), u16(dst >> 6), u32(sliceHeader(a.src.field)), u32(sliceHeader(a.dst.field))]));
    }
    case "set_field": {
      const def = FIELDS[fieldOf(a.field, what)];
      const len = 8 + def.bytes;
      return Buffer.concat([u16(OFPAT.SetField), u16(len + pad8(len).length), u32(oxmHeader(a.field)), be(checkUint(a.value, def.bytes * 8, what), def.bytes), pad8(len)]);
    }
    case "conjunction": {
      // struct nx_action_conjunction: clause (0-based on the wire), n_clauses, id.
      if (!Number.isInteger(a.nClauses) || a.nClauses < 2 || a.nClauses > 64 || !Number.isInteger(a.clause) || a.clause < 1 || a.clause > a.nClauses) {
        throw new Error(`${what}: clause ${a.clause}/${a.nClauses} outside 1..n, n 2..64`);
      }
      return nxAction(NXAST.Conjunction, Buffer.concat([Buffer.from([a.clause - 1, a.nClauses]), u32(Number(checkUint(BigInt(a.id), 32, what)))]));
    }
    case "resubmit": {
      // struct nx_action_resubmit: in_port (OFPP_IN_PORT: unchanged), table, pad.
      if (!Number.isInteger(a.table) || a.table < 0 || a.table > 254) throw new Error(`${what}: table ${a.table} outside 0..254`);
      return nxAction(NXAST.Resubmit, Buffer.concat([u16(0xfff8), Buffer.from([a.table])]));
    }
    case "multipath": {
      // struct nx_action_multipath: fields, basis, pad, algorithm, max_link, arg, pad, ofs_nbits, dst.
      if (!Number.isInteger(a.nLinks) || a.nLinks < 1 || a.nLinks > 0x10000 || (a.dst.nbits < 32 && a.nLinks > 2 ** a.dst.nbits)) {
        throw new Error(`${what}: ${a.nLinks} links do not fit 1..65536 or ${a.dst.nbits} bits`);
      }
      const body = Buffer.concat([u16(NX_MP.FieldsL3L4Udp), u16(0), u16(0), u16(NX_MP.AlgHrw), u16(a.nLinks - 1), u32(0), u16(0), u16(ofsNbits(a.dst, what)), u32(sliceHeader(a.dst.field))]);
      return nxAction(NXAST.Multipath, body);
    }
    case "ct": {
      // struct nx_action_conntrack: flags, zone_src (0: immediate), zone, recirc_table, pad, alg; then nested actions,
      // NXAST_NAT first (pad, flags, range_present, then the range's IPv4 minimum and port minimum).
      const natBody = !a.nat ? undefined : !a.nat.dst ? Buffer.concat([u16(0), u16(0), u16(0)]) : Buffer.concat([
        u16(0), u16(NX_NAT.FlagDst), u16(NX_NAT.Ipv4Min | (a.nat.dst.port === undefined ? 0 : NX_NAT.ProtoMin)),
        u32(Number(checkUint(a.nat.dst.ip, 32, what))), ...(a.nat.dst.port === undefined ? [] : [u16(Number(checkUint(BigInt(a.nat.dst.port), 16, what)))]),
      ]);
      const nested = Buffer.concat([...(natBody ? [nxAction(NXAST.Nat, natBody)] : []), ...(a.exec ?? []).map(encodeAction)]);
      const table = a.table ?? NX_CT_RECIRC_NONE;
      if (!Number.isInteger(table) || table < 0 || table > 255) throw new Error(`${what}: table ${table} outside 0..254`);
      const body = Buffer.concat([u16(a.commit ? NX_CT_F_COMMIT : 0), u32(0), u16(Number(checkUint(BigInt(a.zone), 16, what))), Buffer.from([table, 0, 0, 0]), u16(0)]);
      return Buffer.concat([u16(OFPAT.Experimenter), u16(10 + body.length + nested.length), u32(NX_VENDOR_ID), u16(NXAST.Ct), body, nested]);
    }
    default:
      throw new Error(`unsupported action ${JSON.stringify(a)}`);
  }
}

/**
 * Encodes actions as OpenFlow 1.4 instructions: APPLY_ACTIONS with the actions, then GOTO_TABLE when the
 * list ends with one. No actions (drop) gives no instruction. Throws an Error naming the action when a
 * value or slice does not fit its field, a move's widths differ, or goto_table is not last or not 0..254.
 */
export function encodeInstructions(actions: readonly Action[]): Buffer {
  const apply: Buffer[] = [];
  const out: Buffer[] = [];
  actions.forEach((a, i) => {
    if (a.type !== "goto_table") return void apply.push(encodeAction(a));
    if (i !== actions.length - 1) throw new Error(`action goto_table:${a.table} must be the last action`);
    if (!Number.isInteger(a.table) || a.table < 0 || a.table > 254) throw new Error(`action goto_table:${a.table}: table outside 0..254`);
    out.push(u16(OFPIT.GotoTable), u16(8), Buffer.from([a.table, 0, 0, 0]));
  });
  if (apply.length === 0) return Buffer.concat(out);
  const body = Buffer.concat(apply);
  return Buffer.concat([u16(OFPIT.ApplyActions), u16(8 + body.length), Buffer.alloc(4), body, ...out]);
}
