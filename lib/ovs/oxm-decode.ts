// Decoding OpenFlow 1.4 OXM/NXM matches and instructions (flow-stats replies) back into typed flows (lib/ovs/flow.ts).
import { FIELDS, FIELD_ORDER, fullMask, IN_PORT, type Action, type FieldName, type Match, type MatchValue, type NatSpec, type Slice } from "./flow.ts";
import { BY_ID, isReg, NX_CT_F_COMMIT, NX_CT_RECIRC_NONE, NX_MP, NX_NAT, NX_VENDOR_ID, NXAST, OFPAT, OFPIT, ofsNbits, unbe } from "./oxm.ts";


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

/** NXAST_NAT: none (the connection's own NAT) or a destination NAT to one IPv4 and maybe one port. */
function decodeNat(a: Buffer): NatSpec {
  const [flags, range] = [a.readUInt16BE(12), a.readUInt16BE(14)];
  if (flags === 0 && range === 0) return {};
  if (flags !== NX_NAT.FlagDst || (range & ~NX_NAT.ProtoMin) !== NX_NAT.Ipv4Min) throw new Error(`nat with flags 0x${flags.toString(16)}, range 0x${range.toString(16)} is not in our vocabulary`);
  const ip = BigInt(a.readUInt32BE(16));
  return { dst: range & NX_NAT.ProtoMin ? { ip, port: a.readUInt16BE(20) } : { ip } };
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
    case NXAST.Conjunction:
      return { type: "conjunction", id: a.readUInt32BE(12), clause: a[10]! + 1, nClauses: a[11]! };
    case NXAST.Resubmit:
      if (a.readUInt16BE(10) !== 0xfff8) throw new Error("resubmit to another port is not in our vocabulary");
      return { type: "resubmit", table: a[12]! };
    case NXAST.Multipath: {
      if (a.readUInt16BE(10) !== NX_MP.FieldsL3L4Udp || a.readUInt16BE(12) !== 0 || a.readUInt16BE(16) !== NX_MP.AlgHrw) {
        throw new Error("multipath other than symmetric_l3l4+udp, basis 0, hrw is not in our vocabulary");
      }
      const ofs = a.readUInt16BE(26);
      return { type: "multipath", nLinks: a.readUInt16BE(18) + 1, dst: readSlice(a, 28, ofs >> 6, (ofs & 0x3f) + 1, "multipath") };
    }
    case NXAST.Ct: {
      if (a.readUInt32BE(12) !== 0) throw new Error("ct with a zone from a field is not in our vocabulary");
      const exec: Action[] = [];
      let nat: NatSpec | undefined;
      for (let n = 24; n + 4 <= a.length; n += a.readUInt16BE(n + 2)) {
        if (a.readUInt16BE(n + 2) < 8) throw new Error(`ct: nested action with bad length ${a.readUInt16BE(n + 2)}`);
        if (n === 24 && a.readUInt16BE(n) === OFPAT.Experimenter && a.readUInt16BE(n + 8) === NXAST.Nat) nat = decodeNat(a.subarray(n, n + a.readUInt16BE(n + 2)));
        else exec.push(decodeAction(a, n));
      }
      const table = a[18]!;
      return {
        type: "ct",
        commit: (a.readUInt16BE(10) & NX_CT_F_COMMIT) !== 0,
        zone: a.readUInt16BE(16),
        ...(table === NX_CT_RECIRC_NONE ? {} : { table }),
        ...(nat ? { nat } : {}),
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
