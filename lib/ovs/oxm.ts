// Typed matches and actions (lib/ovs/flow.ts) to OpenFlow 1.4 OXM/NXM bytes and back, byte for byte as ovs-ofctl writes them.
import { FIELDS, FIELD_ORDER, fullMask, IN_PORT, type Action, type FieldName, type Match, type MatchValue, type Slice } from "./flow.ts";

/** Nicira's experimenter id (NX_VENDOR_ID). */
export const NX_VENDOR_ID = 0x00002320;

/** Nicira action subtypes we write or read. */
export const NXAST = { RegMove: 6, RegLoad: 7, OutputReg: 15, OutputReg2: 32, RegLoad2: 33, Ct: 35 } as const;

/** NXAST_CT: the commit flag, and the recirculation table meaning "none". */
const NX_CT_F_COMMIT = 1;
const NX_CT_RECIRC_NONE = 255;
/** OpenFlow 1.4 action and instruction types we write or read. */
const OFPAT = { Output: 0, SetField: 25, Experimenter: 0xffff } as const;
const OFPIT = { GotoTable: 1, ApplyActions: 4 } as const;

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
const BY_ID = new Map<number, FieldName>();
for (const n of FIELD_ORDER) {
  BY_ID.set((FIELDS[n].oxmClass << 7) | FIELDS[n].oxmField, n);
  const x = NXM[n];
  if (x) BY_ID.set((x[0] << 7) | x[1], n);
}

const isReg = (n: FieldName) => /^reg\d+$/.test(n);

// ---- bytes -------------------------------------------------------------------------------------------

/** `n` as a big-endian unsigned integer of `bytes` bytes. */
function be(n: bigint, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = bytes - 1; i >= 0; i--, n >>= 8n) b[i] = Number(n & 0xffn);
  return b;
}

/** A big-endian unsigned integer of the whole buffer. */
function unbe(b: Buffer): bigint {
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
    const mask = v.mask === undefined ? fullMask(name) : checkUint(v.mask, bits, what);
    if (mask === 0n) continue;
    if (mask === fullMask(name)) parts.push(u32(oxmHeader(name)), be(v.value, def.bytes));
    else parts.push(u32(oxmHeader(name, true)), be(v.value & mask, def.bytes), be(mask, def.bytes));
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([u16(1), u16(4 + body.length), body, pad8(4 + body.length)]);
}

/** `ofs_nbits` of a slice (offset << 6 | nbits - 1), checked against its field. */
function ofsNbits(s: Slice, what: string): number {
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
    case "ct": {
      // struct nx_action_conntrack: flags, zone_src (0: immediate), zone, recirc_table, pad, alg; then nested actions.
      const nested = Buffer.concat((a.exec ?? []).map(encodeAction));
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

// ---- decoding ----------------------------------------------------------------------------------------

/** One OXM/NXM TLV at `off`: its field, value, mask (undefined when absent) and total length. */
function readTlv(buf: Buffer, off: number, what: string): { field: FieldName; value: bigint; mask?: bigint; length: number } {
  if (off + 4 > buf.length) throw new Error(`${what}: truncated OXM header`);
  const h = buf.readUInt32BE(off);
  const [cls, fld, hasMask, len] = [h >>> 16, (h >>> 9) & 0x7f, (h >>> 8) & 1, h & 0xff];
  const field = BY_ID.get((cls << 7) | fld);
  const name = `OXM 0x${h.toString(16).padStart(8, "0")}`;
  if (!field) throw new Error(`${what}: unsupported field ${name}`);
  const bytes = FIELDS[field].bytes;
  if (len !== (hasMask ? 2 * bytes : bytes)) throw new Error(`${what}: ${name} (${field}) has length ${len}, expected ${bytes} bytes${hasMask ? " twice" : ""}`);
  if (off + 4 + len > buf.length) throw new Error(`${what}: truncated ${name}`);
  const value = unbe(buf.subarray(off + 4, off + 4 + bytes));
  if (!hasMask) return { field, value, length: 4 + len };
  return { field, value, mask: unbe(buf.subarray(off + 4 + bytes, off + 4 + len)), length: 4 + len };
}

/**
 * Decodes an OXM `ofp_match` at the start of `buf`; `length` includes its padding. Values come back
 * canonical, as flow.ts builds them: a full mask is dropped, a value is cut to its mask, a zero-mask
 * field is left out; keys in FIELD_ORDER. Throws on a non-OXM match or a field outside FIELDS.
 */
export function decodeMatch(buf: Buffer): { match: Match; length: number } {
  if (buf.length < 4 || buf.readUInt16BE(0) !== 1) throw new Error("match: not an OXM match (type 1)");
  const len = buf.readUInt16BE(2);
  if (len < 4 || len > buf.length) throw new Error(`match: bad length ${len}`);
  const got = new Map<FieldName, MatchValue>();
  for (let off = 4; off < len; ) {
    const t = readTlv(buf.subarray(0, len), off, "match");
    off += t.length;
    if (got.has(t.field)) throw new Error(`match: ${t.field} given twice`);
    const full = fullMask(t.field);
    const mask = t.mask ?? full;
    if (mask === 0n) continue;
    got.set(t.field, mask === full ? { value: t.value } : { value: t.value & mask, mask });
  }
  const match: { [K in FieldName]?: MatchValue } = {};
  for (const n of FIELD_ORDER) if (got.has(n)) match[n] = got.get(n)!;
  return { match, length: len + ((8 - (len % 8)) % 8) };
}

/** A slice from an NXM/OXM header and ofs_nbits; whole fields come back as flow.ts's slice(field). */
function readSlice(buf: Buffer, off: number, ofs: number, nbits: number, what: string): Slice {
  const h = buf.readUInt32BE(off);
  const field = BY_ID.get(((h >>> 16) << 7) | ((h >>> 9) & 0x7f));
  if (!field || (h & 0xff) !== FIELDS[field].bytes) throw new Error(`${what}: unsupported field OXM 0x${h.toString(16).padStart(8, "0")}`);
  const s = { field, ofs, nbits };
  ofsNbits(s, what);
  return s;
}

/** Bits of a contiguous mask of a field as a slice, or undefined when the mask has holes. */
function maskSlice(field: FieldName, mask: bigint): Slice | undefined {
  let ofs = 0;
  while (ofs < 64 && ((mask >> BigInt(ofs)) & 1n) === 0n) ofs++;
  const run = (mask >> BigInt(ofs)).toString(2);
  return /^1+$/.test(run) ? { field, ofs, nbits: run.length } : undefined;
}

/**
 * A write of `value` under `mask` to a field, as flow.ts's constructors build it: a whole register is
 * `load` (act.loadReg), a whole other field `set_field` (act.setMac/setIPv4/setInt), part of any
 * field a `load` of that slice with the value shifted down.
 */
function write(field: FieldName, value: bigint, mask: bigint | undefined, what: string): Action {
  const full = fullMask(field);
  const m = mask ?? full;
  if (m === full) return isReg(field) ? { type: "load", dst: { field, ofs: 0, nbits: FIELDS[field].bytes * 8 }, value } : { type: "set_field", field, value };
  const s = maskSlice(field, m);
  if (!s) throw new Error(`${what}: ${field} written under a non-contiguous mask 0x${m.toString(16)}`);
  return { type: "load", dst: s, value: (value & m) >> BigInt(s.ofs) };
}

/** One action at `off` (its length in the header). */
function decodeAction(buf: Buffer, off: number): Action {
  const type = buf.readUInt16BE(off);
  const a = buf.subarray(off, off + buf.readUInt16BE(off + 2));
  if (type === OFPAT.Output) {
    const port = a.readUInt32BE(4);
    return { type: "output", port: port === IN_PORT ? IN_PORT : port };
  }
  if (type === OFPAT.SetField) {
    const t = readTlv(a, 4, "set_field");
    return write(t.field, t.value, t.mask, "set_field");
  }
  if (type !== OFPAT.Experimenter || a.length < 10 || a.readUInt32BE(4) !== NX_VENDOR_ID) throw new Error(`unsupported action type ${type}`);
  const sub = a.readUInt16BE(8);
  const on = () => [a.readUInt16BE(10) >> 6, (a.readUInt16BE(10) & 0x3f) + 1] as const;
  switch (sub) {
    case NXAST.RegMove: {
      const [nbits, srcOfs, dstOfs] = [a.readUInt16BE(10), a.readUInt16BE(12), a.readUInt16BE(14)];
      return { type: "move", src: readSlice(a, 16, srcOfs, nbits, "move"), dst: readSlice(a, 20, dstOfs, nbits, "move") };
    }
    case NXAST.RegLoad: {
      const dst = readSlice(a, 12, ...on(), "load");
      return { type: "load", dst, value: a.readBigUInt64BE(16) };
    }
    case NXAST.RegLoad2: {
      const t = readTlv(a, 10, "load");
      return write(t.field, t.value, t.mask, "load");
    }
    case NXAST.OutputReg:
      return { type: "output_reg", src: readSlice(a, 12, ...on(), "output_reg") };
    case NXAST.OutputReg2:
      return { type: "output_reg", src: readSlice(a, 14, ...on(), "output_reg") };
    case NXAST.Ct: {
      if (a.readUInt32BE(12) !== 0) throw new Error("ct with a zone from a field is not in our vocabulary");
      const exec: Action[] = [];
      for (let n = 24; n + 4 <= a.length; n += a.readUInt16BE(n + 2)) {
        if (a.readUInt16BE(n + 2) < 8) throw new Error(`ct: nested action with bad length ${a.readUInt16BE(n + 2)}`);
        exec.push(decodeAction(a, n));
      }
      const table = a[18]!;
      return {
        type: "ct",
        commit: (a.readUInt16BE(10) & NX_CT_F_COMMIT) !== 0,
        zone: a.readUInt16BE(16),
        ...(table === NX_CT_RECIRC_NONE ? {} : { table }),
        ...(exec.length ? { exec } : {}),
      };
    }
    default:
      throw new Error(`unsupported Nicira action subtype ${sub}`);
  }
}

/**
 * Decodes OpenFlow 1.4 instructions (the rest of a flow stats entry) into flow.ts actions: the actions of
 * APPLY_ACTIONS (NXAST_CT with its nested exec actions), then goto_table; none is drop. NXAST_REG_LOAD is
 * always `load` (what we send for it); OFPAT_SET_FIELD and NXAST_REG_LOAD2 come back in the constructors'
 * form (see write()): a whole register `load`, a whole other field `set_field`, part of a field a `load` of
 * that slice; NXAST_OUTPUT_REG2 is `output_reg`; NXM and OXM headers both name a field; output to
 * 0xfffffff8 is IN_PORT. OVS 3.1 answers a flow dump in the very encoding it was sent (it keeps each
 * action's wire form), so these other forms come only from flows another client wrote. Throws on anything else.
 */
export function decodeInstructions(buf: Buffer): Action[] {
  const actions: Action[] = [];
  let goto: Action | undefined;
  for (let off = 0; off + 4 <= buf.length; ) {
    const [type, len] = [buf.readUInt16BE(off), buf.readUInt16BE(off + 2)];
    if (len < 8 || off + len > buf.length) throw new Error(`instruction type ${type}: bad length ${len}`);
    if (type === OFPIT.GotoTable) goto = { type: "goto_table", table: buf[off + 4]! };
    else if (type === OFPIT.ApplyActions) {
      for (let a = off + 8; a + 4 <= off + len; ) {
        const alen = buf.readUInt16BE(a + 2);
        if (alen < 8 || a + alen > off + len) throw new Error(`action type ${buf.readUInt16BE(a)}: bad length ${alen}`);
        actions.push(decodeAction(buf.subarray(0, off + len), a));
        a += alen;
      }
    } else throw new Error(`unsupported instruction type ${type}`);
    off += len;
  }
  return goto ? [...actions, goto] : actions;
}
