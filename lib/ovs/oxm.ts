// Our flow builders' ovs-ofctl vocabulary (match fields, actions) encoded as OpenFlow 1.4 OXM/NXM bytes.

/** An NXM/OXM header: class (16 bits), field (7), has-mask (1), payload length (8). */
function oxm(cls: number, field: number, bytes: number): number {
  return ((cls << 16) | (field << 9) | bytes) >>> 0;
}

/** Nicira's experimenter id (NX_VENDOR_ID). */
export const NX_VENDOR_ID = 0x00002320;

type Kind = "int" | "mac" | "ip";

interface MatchField {
  header: number;
  bytes: number;
  kind: Kind;
  maskable: boolean;
  /** Ethertype the field needs matched first (OXM prerequisite). */
  needs?: number;
}

const IP = 0x0800;
const ARP = 0x0806;

/** Match fields in the order ovs-ofctl writes them (so our bytes equal its bytes). */
const MATCH_FIELDS: ReadonlyMap<string, MatchField> = new Map<string, MatchField>([
  ["in_port", { header: oxm(0x8000, 0, 4), bytes: 4, kind: "int", maskable: false }],
  ["dl_src", { header: oxm(0x8000, 4, 6), bytes: 6, kind: "mac", maskable: false }],
  ["dl_dst", { header: oxm(0x8000, 3, 6), bytes: 6, kind: "mac", maskable: false }],
  ["dl_type", { header: oxm(0x8000, 5, 2), bytes: 2, kind: "int", maskable: false }],
  ["nw_src", { header: oxm(0x8000, 11, 4), bytes: 4, kind: "ip", maskable: true, needs: IP }],
  ["nw_dst", { header: oxm(0x8000, 12, 4), bytes: 4, kind: "ip", maskable: true, needs: IP }],
  ["arp_op", { header: oxm(0x8000, 21, 2), bytes: 2, kind: "int", maskable: false, needs: ARP }],
  ["arp_spa", { header: oxm(0x8000, 22, 4), bytes: 4, kind: "ip", maskable: true, needs: ARP }],
  ["arp_tpa", { header: oxm(0x8000, 23, 4), bytes: 4, kind: "ip", maskable: true, needs: ARP }],
  ["arp_sha", { header: oxm(0x8000, 24, 6), bytes: 6, kind: "mac", maskable: false, needs: ARP }],
  ["arp_tha", { header: oxm(0x8000, 25, 6), bytes: 6, kind: "mac", maskable: false, needs: ARP }],
  ["tun_id", { header: oxm(0x8000, 38, 8), bytes: 8, kind: "int", maskable: true }],
  ["tun_src", { header: oxm(0x0001, 31, 4), bytes: 4, kind: "ip", maskable: true }],
  ["tun_dst", { header: oxm(0x0001, 32, 4), bytes: 4, kind: "ip", maskable: true }],
  ...Array.from({ length: 16 }, (_, k): [string, MatchField] => [`reg${k}`, { header: oxm(0x0001, k, 4), bytes: 4, kind: "int", maskable: true }]),
]);
const FIELD_ORDER = [...MATCH_FIELDS.keys()];

/** NXM fields that move, load and output take as `NAME[]` or `NAME[a..b]`. */
const NXM_FIELDS: ReadonlyMap<string, { header: number; bits: number }> = new Map([
  ["NXM_OF_ETH_DST", { header: oxm(0x0000, 1, 6), bits: 48 }],
  ["NXM_OF_ETH_SRC", { header: oxm(0x0000, 2, 6), bits: 48 }],
  ["NXM_OF_ARP_SPA", { header: oxm(0x0000, 16, 4), bits: 32 }],
  ["NXM_OF_ARP_TPA", { header: oxm(0x0000, 17, 4), bits: 32 }],
  ["NXM_NX_TUN_ID", { header: oxm(0x0001, 16, 8), bits: 64 }],
  ["NXM_NX_ARP_SHA", { header: oxm(0x0001, 17, 6), bits: 48 }],
  ["NXM_NX_ARP_THA", { header: oxm(0x0001, 18, 6), bits: 48 }],
  ...Array.from({ length: 16 }, (_, k): [string, { header: number; bits: number }] => [`NXM_NX_REG${k}`, { header: oxm(0x0001, k, 4), bits: 32 }]),
]);

/** Fields `set_field:V->name` writes (OFPAT_SET_FIELD). */
const SET_FIELDS: ReadonlyMap<string, { header: number; bytes: number; kind: Kind }> = new Map([
  ["eth_src", { header: oxm(0x8000, 4, 6), bytes: 6, kind: "mac" as Kind }],
  ["eth_dst", { header: oxm(0x8000, 3, 6), bytes: 6, kind: "mac" as Kind }],
  ["arp_op", { header: oxm(0x8000, 21, 2), bytes: 2, kind: "int" as Kind }],
  ["arp_spa", { header: oxm(0x8000, 22, 4), bytes: 4, kind: "ip" as Kind }],
  ["arp_sha", { header: oxm(0x8000, 24, 6), bytes: 6, kind: "mac" as Kind }],
  ["tun_dst", { header: oxm(0x0001, 32, 4), bytes: 4, kind: "ip" as Kind }],
]);

/** `n` as a big-endian unsigned integer of `bytes` bytes. */
function be(n: bigint, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = bytes - 1; i >= 0; i--, n >>= 8n) b[i] = Number(n & 0xffn);
  return b;
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

/** A decimal or 0x-hex integer that fits in `bits` bits; throws naming `what` otherwise. */
function parseUint(text: string, bits: number, what: string): bigint {
  if (!/^(?:0x[0-9a-fA-F]+|\d+)$/.test(text)) throw new Error(`${what}: "${text}" is not an integer`);
  const n = BigInt(text);
  if (n >> BigInt(bits) !== 0n) throw new Error(`${what}: ${text} does not fit in ${bits} bits`);
  return n;
}

function parseValue(kind: Kind, bytes: number, text: string, what: string): bigint {
  if (kind === "int") return parseUint(text, bytes * 8, what);
  if (kind === "mac") {
    if (!/^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/.test(text)) throw new Error(`${what}: "${text}" is not a MAC address`);
    return BigInt(`0x${text.replace(/:/g, "")}`);
  }
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) throw new Error(`${what}: "${text}" is not an IPv4 address`);
  return m.slice(1).reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

/** Value and mask of `text` (`V`, `V/M`, or `IP/prefix`); the mask is all ones when absent. */
function parseMasked(f: MatchField, text: string, what: string): [bigint, bigint] {
  const full = (1n << BigInt(f.bytes * 8)) - 1n;
  const slash = text.indexOf("/");
  if (slash < 0) return [parseValue(f.kind, f.bytes, text, what), full];
  if (!f.maskable) throw new Error(`${what}: this field takes no mask`);
  const [v, m] = [text.slice(0, slash), text.slice(slash + 1)];
  let mask: bigint;
  if (f.kind === "ip" && /^\d{1,2}$/.test(m) && Number(m) <= 32) mask = (full << BigInt(32 - Number(m))) & full;
  else mask = parseValue(f.kind, f.bytes, m, what);
  return [parseValue(f.kind, f.bytes, v, what) & mask, mask];
}

/**
 * Encodes match strings (`in_port=5`, `ip`, `arp`, `nw_dst=10.244.2.0/24`, `reg0=100`, `tun_src=…`, …)
 * as an OpenFlow 1.4 `ofp_match` (OXM type, padded to 8 bytes), fields in ovs-ofctl's order, the
 * ethertype before the IPv4/ARP fields that need it. Throws an Error naming any token outside our
 * vocabulary, a duplicate field, or an IPv4/ARP field without `ip`/`arp`.
 */
export function encodeMatch(match: readonly string[]): Buffer {
  const fields = new Map<string, [bigint, bigint]>();
  for (const tok of match) {
    const eq = tok.indexOf("=");
    let name = eq < 0 ? tok : tok.slice(0, eq);
    let value: [bigint, bigint];
    if (eq < 0 && (tok === "ip" || tok === "arp")) {
      name = "dl_type";
      value = [BigInt(tok === "ip" ? IP : ARP), 0xffffn];
    } else {
      const f = MATCH_FIELDS.get(name);
      if (!f || eq < 0) throw new Error(`unsupported match field "${tok}"`);
      value = parseMasked(f, tok.slice(eq + 1), `match "${tok}"`);
    }
    if (fields.has(name)) throw new Error(`match "${tok}": ${name === "dl_type" ? "ethertype" : name} given twice`);
    fields.set(name, value);
  }
  const parts: Buffer[] = [];
  for (const name of FIELD_ORDER) {
    const v = fields.get(name);
    if (!v) continue;
    const f = MATCH_FIELDS.get(name)!;
    if (f.needs !== undefined && fields.get("dl_type")?.[0] !== BigInt(f.needs)) {
      throw new Error(`match "${name}" needs "${f.needs === IP ? "ip" : "arp"}" in the same flow`);
    }
    const full = (1n << BigInt(f.bytes * 8)) - 1n;
    if (v[1] === 0n) continue; // fully wildcarded: not matched at all
    if (v[1] === full) parts.push(u32(f.header), be(v[0], f.bytes));
    else parts.push(u32((f.header | 0x100) + f.bytes), be(v[0], f.bytes), be(v[1], f.bytes));
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([u16(1), u16(4 + body.length), body, pad8(4 + body.length)]);
}

/** `NAME[]`, `NAME[a..b]` or `NAME[a]`: header, offset and width of an NXM field slice. */
function parseSlice(text: string, what: string): { header: number; ofs: number; nbits: number } {
  const m = /^([A-Z0-9_]+)\[(?:(\d+)(?:\.\.(\d+))?)?\]$/.exec(text);
  const f = m ? NXM_FIELDS.get(m[1]!) : undefined;
  if (!m || !f) throw new Error(`${what}: unsupported field "${text}"`);
  if (m[2] === undefined) return { header: f.header, ofs: 0, nbits: f.bits };
  const [a, b] = [Number(m[2]), Number(m[3] ?? m[2])];
  if (a > b || b >= f.bits) throw new Error(`${what}: bits ${a}..${b} outside ${m[1]} (${f.bits} bits)`);
  return { header: f.header, ofs: a, nbits: b - a + 1 };
}

/** A Nicira extension action: type 0xffff, length, NX_VENDOR_ID, subtype, body (padded to 8). */
function nxAction(subtype: number, body: Buffer): Buffer {
  const len = 10 + body.length;
  return Buffer.concat([u16(0xffff), u16(len + pad8(len).length), u32(NX_VENDOR_ID), u16(subtype), body, pad8(len)]);
}

function outputAction(port: number): Buffer {
  return Buffer.concat([u16(0), u16(16), u32(port), u16(0), Buffer.alloc(6)]);
}

/** One action (not drop or goto_table) as OpenFlow 1.4 / Nicira bytes. */
function encodeAction(a: string): Buffer {
  const what = `action "${a}"`;
  if (a === "IN_PORT") return outputAction(0xfffffff8);
  let m = /^output:(.+)$/.exec(a);
  if (m && /^\d+$/.test(m[1]!)) return outputAction(Number(parseUint(m[1]!, 32, what)));
  if (m) {
    const s = parseSlice(m[1]!, what); // NXAST_OUTPUT_REG
    return nxAction(15, Buffer.concat([u16((s.ofs << 6) | (s.nbits - 1)), u32(s.header), u16(0xffff)]));
  }
  if ((m = /^load:([^-]+)->(.+)$/.exec(a))) {
    const s = parseSlice(m[2]!, what); // NXAST_REG_LOAD
    const v = parseUint(m[1]!, s.nbits, what);
    return nxAction(7, Buffer.concat([u16((s.ofs << 6) | (s.nbits - 1)), u32(s.header), be(v, 8)]));
  }
  if ((m = /^move:([^-]+)->(.+)$/.exec(a))) {
    const [src, dst] = [parseSlice(m[1]!, what), parseSlice(m[2]!, what)]; // NXAST_REG_MOVE
    if (src.nbits !== dst.nbits) throw new Error(`${what}: source is ${src.nbits} bits, destination ${dst.nbits}`);
    return nxAction(6, Buffer.concat([u16(src.nbits), u16(src.ofs), u16(dst.ofs), u32(src.header), u32(dst.header)]));
  }
  if ((m = /^set_field:([^-]+)->(.+)$/.exec(a))) {
    const f = SET_FIELDS.get(m[2]!);
    if (!f) throw new Error(`${what}: unsupported set_field target "${m[2]}"`);
    const len = 8 + f.bytes; // OFPAT_SET_FIELD
    return Buffer.concat([u16(25), u16(len + pad8(len).length), u32(f.header), be(parseValue(f.kind, f.bytes, m[1]!, what), f.bytes), pad8(len)]);
  }
  throw new Error(`unsupported action "${a}"`);
}

/**
 * Encodes an action list (`drop`, `goto_table:N`, `output:N`, `output:NXM_NX_REGk[]`, `IN_PORT`,
 * `load:`, `move:`, `set_field:`) as OpenFlow 1.4 instructions: APPLY_ACTIONS with the actions, then
 * GOTO_TABLE when the list ends with it. `drop` alone (or nothing) gives no instruction. Throws an
 * Error naming any token outside our vocabulary, `drop` next to other actions, or a goto_table not last.
 */
export function encodeInstructions(actions: readonly string[]): Buffer {
  if (actions.length === 1 && actions[0] === "drop") return Buffer.alloc(0);
  const out: Buffer[] = [];
  const apply: Buffer[] = [];
  actions.forEach((a, i) => {
    const g = /^goto_table:(\d+)$/.exec(a);
    if (a === "drop") throw new Error(`action "drop" must be the only action`);
    if (!g) return void apply.push(encodeAction(a));
    if (i !== actions.length - 1) throw new Error(`action "${a}" must be the last action`);
    out.push(u16(1), u16(8), Buffer.from([Number(parseUint(g[1]!, 8, `action "${a}"`)), 0, 0, 0]));
  });
  if (apply.length === 0) return Buffer.concat(out);
  const body = Buffer.concat(apply);
  return Buffer.concat([u16(4), u16(8 + body.length), Buffer.alloc(4), body, ...out]);
}
