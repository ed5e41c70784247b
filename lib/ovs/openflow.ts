// OpenFlow 1.4 messages we send and read: header, hello, flow mods, bundles, flow stats, errors (openflow-conn.ts talks).
import { messageOf } from "../cni/errors.ts";
import { type Flow, type FlowOp, type FlowStats } from "./flow.ts";
import { hex, renderFlow } from "./flow-text.ts";
import { encodeInstructions, encodeMatch, NX_VENDOR_ID } from "./oxm.ts";
import { decodeInstructions, decodeMatch } from "./oxm-decode.ts";

/** OpenFlow 1.4's wire version. */
export const OFP14_VERSION = 0x05;
/** The message types we send or read. */
export const OFPT = {
  Hello: 0, Error: 1, EchoRequest: 2, EchoReply: 3, FlowMod: 14, MultipartRequest: 18, MultipartReply: 19,
  BarrierRequest: 20, BarrierReply: 21, BundleControl: 33, BundleAdd: 34,
} as const;
/** OFPT_BUNDLE_CONTROL types. */
export const BundleCtrl = { OpenRequest: 0, OpenReply: 1, CommitRequest: 4, CommitReply: 5, DiscardRequest: 6 } as const;
/** Multipart type OFPMP_FLOW_DESC: individual flow statistics. */
export const OFPMP_FLOW_DESC = 1;
/** Multipart type OFPMP_AGGREGATE_STATS: the number of flows (and their counters) a filter selects. */
export const OFPMP_AGGREGATE_STATS = 2;
/** Multipart flag OFPMPF_REPLY_MORE: more reply messages follow for the same xid. */
export const OFPMPF_REPLY_MORE = 1;
/** OFPBF_ATOMIC | OFPBF_ORDERED, as ovs-ofctl bundle sends them. */
export const BUNDLE_FLAGS = 3;
/** Default time for connecting and for each exchange (ms), as `ovs-ofctl --timeout=5`. */
export const DEFAULT_TIMEOUT_MS = 5000;
/** OFPFC_* flow mod commands we send. */
export const OFPFC = { Add: 0, Delete: 3, DeleteStrict: 4 } as const;

const ANY = 0xffffffff; // OFPP_ANY, OFPG_ANY, OFP_NO_BUFFER
const ALL_TABLES = 0xff; // OFPTT_ALL
const ALL_ONES = 0xffffffffffffffffn;

/** One OpenFlow message: version 1.4 header (type, length, xid) and body. */
export function ofMessage(type: number, xid: number, body: Buffer = Buffer.alloc(0)): Buffer {
  if (8 + body.length > 0xffff) throw new Error(`OpenFlow message of ${8 + body.length} bytes exceeds 65535`);
  const h = Buffer.alloc(8);
  h.writeUInt8(OFP14_VERSION, 0);
  h.writeUInt8(type, 1);
  h.writeUInt16BE(8 + body.length, 2);
  h.writeUInt32BE(xid >>> 0, 4);
  return Buffer.concat([h, body]);
}

/** OFPT_HELLO offering OpenFlow 1.4 only (a version bitmap element). */
export function helloMessage(xid: number): Buffer {
  return ofMessage(OFPT.Hello, xid, Buffer.from([0, 1, 0, 8, 0, 0, 0, 1 << OFP14_VERSION]));
}

/** True when a peer's HELLO body (and header version) offers OpenFlow 1.4. */
export function helloOffers14(version: number, body: Buffer): boolean {
  const bitmap = body.length >= 8 && body.readUInt16BE(0) === 1 ? body.readUInt32BE(4) : version >= OFP14_VERSION ? 1 << OFP14_VERSION : 0;
  return (bitmap & (1 << OFP14_VERSION)) !== 0;
}

/** A change as the text `ovs-ofctl bundle` takes (for error messages). */
export function describeOp(op: FlowOp): string {
  if (op.op === "add") return `flow add ${describeFlow(op.flow)}`;
  if (op.op === "delete") return `flow delete cookie=${hex(op.cookie)}/${hex(op.mask)}`;
  return `flow delete_strict ${describeFlow(op.flow)}`;
}

/** renderFlow(), or a JSON rendering when the flow names a field flow.ts does not know. */
function describeFlow(f: Flow): string {
  try {
    return renderFlow(f);
  } catch {
    const json = (x: unknown) => JSON.stringify(x, (_k, v: unknown) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v));
    return `table=${f.table},priority=${f.priority},cookie=${typeof f.cookie === "bigint" ? hex(f.cookie) : f.cookie} match=${json(f.match)} actions=${json(f.actions)}`;
  }
}

function checkFlow(f: Flow): void {
  if (!Number.isInteger(f.table) || f.table < 0 || f.table > 254) throw new Error(`flow "${describeFlow(f)}": table ${f.table} outside 0..254`);
  if (!Number.isInteger(f.priority) || f.priority < 0 || f.priority > 0xffff) throw new Error(`flow "${describeFlow(f)}": bad priority ${f.priority}`);
  if (typeof f.cookie !== "bigint" || f.cookie < 0n || f.cookie > ALL_ONES) throw new Error(`flow "${describeFlow(f)}": bad cookie ${f.cookie}`);
}

/**
 * An OFPT_FLOW_MOD for one change, byte for byte as `ovs-ofctl -O OpenFlow14` writes it: `add` is
 * OFPFC_ADD with table, priority, cookie, match and instructions; `delete` is OFPFC_DELETE of every
 * table (OFPTT_ALL), any out_port/out_group, by cookie under cookie_mask, with an empty match;
 * `delete_strict` is OFPFC_DELETE_STRICT of the flow's table, priority and match, its cookie under a
 * full mask. Throws an Error naming the flow when it cannot be encoded.
 */
export function encodeFlowMod(op: FlowOp, xid: number): Buffer {
  const head = Buffer.alloc(40);
  let tail: Buffer[] = [encodeMatch({})];
  if (op.op === "delete") {
    head.writeBigUInt64BE(op.cookie, 0);
    head.writeBigUInt64BE(op.mask, 8);
    head.writeUInt8(ALL_TABLES, 16);
    head.writeUInt8(OFPFC.Delete, 17);
    head.writeUInt16BE(0x8000, 22); // OFP_DEFAULT_PRIORITY, ignored by a non-strict delete
  } else {
    const f = op.flow;
    checkFlow(f);
    try {
      tail = op.op === "add" ? [encodeMatch(f.match), encodeInstructions(f.actions)] : [encodeMatch(f.match)];
    } catch (e) {
      throw new Error(`cannot encode flow "${describeFlow(f)}": ${messageOf(e)}`);
    }
    head.writeBigUInt64BE(f.cookie, 0);
    head.writeBigUInt64BE(op.op === "add" ? 0n : ALL_ONES, 8);
    head.writeUInt8(f.table, 16);
    head.writeUInt8(op.op === "add" ? OFPFC.Add : OFPFC.DeleteStrict, 17);
    head.writeUInt16BE(f.priority, 22); // idle and hard timeout stay 0
  }
  head.writeUInt32BE(ANY, 24); // buffer_id
  head.writeUInt32BE(ANY, 28); // out_port
  head.writeUInt32BE(ANY, 32); // out_group; flags and importance stay 0
  return ofMessage(OFPT.FlowMod, xid, Buffer.concat([head, ...tail]));
}

/** OFPT_BUNDLE_CONTROL: bundle id, control type, flags, no properties. */
export function bundleControl(xid: number, bundleId: number, type: number, flags = BUNDLE_FLAGS): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(bundleId, 0);
  b.writeUInt16BE(type, 4);
  b.writeUInt16BE(flags, 6);
  return ofMessage(OFPT.BundleControl, xid, b);
}

/** OFPT_BUNDLE_ADD_MESSAGE carrying `msg` (which must have the same xid, as the spec requires). */
export function bundleAdd(xid: number, bundleId: number, msg: Buffer, flags = BUNDLE_FLAGS): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(bundleId, 0);
  b.writeUInt16BE(flags, 6);
  return ofMessage(OFPT.BundleAdd, xid, Buffer.concat([b, msg, Buffer.alloc((8 - (msg.length % 8)) % 8)]));
}

/** Which flows dumpFlows() reads: cookie under mask (mask defaults to all ones when a cookie is given), one table or all. */
export interface FlowFilter {
  cookie?: bigint;
  mask?: bigint;
  table?: number;
}

/** OFPT_MULTIPART_REQUEST of OFPMP_FLOW_DESC for the flows a filter selects (any out_port/out_group, empty match). */
export function flowStatsRequest(xid: number, filter: FlowFilter = {}, type: number = OFPMP_FLOW_DESC): Buffer {
  const { table } = filter;
  if (table !== undefined && (!Number.isInteger(table) || table < 0 || table > 254)) throw new Error(`flow dump: table ${table} outside 0..254`);
  const b = Buffer.alloc(40);
  b.writeUInt16BE(type, 0); // flags and pad stay 0
  b.writeUInt8(table ?? ALL_TABLES, 8);
  b.writeUInt32BE(ANY, 12); // out_port
  b.writeUInt32BE(ANY, 16); // out_group
  b.writeBigUInt64BE(filter.cookie ?? 0n, 24);
  b.writeBigUInt64BE(filter.mask ?? (filter.cookie === undefined ? 0n : ALL_ONES), 32);
  return ofMessage(OFPT.MultipartRequest, xid, Buffer.concat([b, encodeMatch({})]));
}

/** OFPT_MULTIPART_REQUEST of OFPMP_AGGREGATE_STATS: the same filter as flowStatsRequest, answered by one count. */
export function aggregateRequest(xid: number, filter: FlowFilter = {}): Buffer {
  return flowStatsRequest(xid, filter, OFPMP_AGGREGATE_STATS);
}

/** The flow count of an OFPMP_AGGREGATE_STATS reply body (after the 8-byte multipart header). */
export function decodeAggregateCount(body: Buffer): number {
  if (body.length < 24) throw new Error(`aggregate stats reply of ${body.length} bytes, want 24`);
  return body.readUInt32BE(16); // packet_count (8), byte_count (8), flow_count (4), pad (4)
}

/** A flow read back with its counters. */
export interface FlowEntry {
  flow: Flow;
  stats: FlowStats;
}

/**
 * The flows of one OFPMP_FLOW_DESC reply body (after the 8-byte multipart header): each `ofp_flow_stats`
 * decoded to a typed flow (oxm.ts's canonical form) and its counters; durationSec has the nanoseconds as a
 * fraction. Throws an Error naming the table, priority and cookie of a flow outside our vocabulary.
 */
export function decodeFlowStats(body: Buffer): FlowEntry[] {
  const out: FlowEntry[] = [];
  for (let off = 0; off < body.length; ) {
    const len = body.length - off >= 48 ? body.readUInt16BE(off) : 0;
    if (len < 56 || off + len > body.length) throw new Error(`flow stats entry at byte ${off}: bad length ${len}`);
    const e = body.subarray(off, off + len);
    const [table, priority, cookie] = [e[2]!, e.readUInt16BE(12), e.readBigUInt64BE(24)];
    try {
      const { match, length } = decodeMatch(e.subarray(48));
      const flow: Flow = { table, priority, cookie, match, actions: decodeInstructions(e.subarray(48 + length)) };
      const stats: FlowStats = { packets: e.readBigUInt64BE(32), bytes: e.readBigUInt64BE(40), durationSec: e.readUInt32BE(4) + e.readUInt32BE(8) / 1e9 };
      out.push({ flow, stats });
    } catch (err) {
      throw new Error(`cannot decode flow table=${table},priority=${priority},cookie=${hex(cookie)}: ${messageOf(err)}`);
    }
    off += len;
  }
  return out;
}

const s = (x: string) => x.split(" ");
/** OpenFlow 1.4 error types (prefix, names of codes in order) we name; others print as numbers. */
const ERRORS: Record<number, [string, string[]]> = {
  0: ["OFPHFC", s("INCOMPATIBLE EPERM")],
  1: ["OFPBRC", s("BAD_VERSION BAD_TYPE BAD_MULTIPART BAD_EXPERIMENTER BAD_EXP_TYPE EPERM BAD_LEN BUFFER_EMPTY BUFFER_UNKNOWN BAD_TABLE_ID IS_SLAVE BAD_PORT BAD_PACKET MULTIPART_BUFFER_OVERFLOW")],
  2: ["OFPBAC", s("BAD_TYPE BAD_LEN BAD_EXPERIMENTER BAD_EXP_TYPE BAD_OUT_PORT BAD_ARGUMENT EPERM TOO_MANY BAD_QUEUE BAD_OUT_GROUP MATCH_INCONSISTENT UNSUPPORTED_ORDER BAD_TAG BAD_SET_TYPE BAD_SET_LEN BAD_SET_ARGUMENT")],
  3: ["OFPBIC", s("UNKNOWN_INST UNSUP_INST BAD_TABLE_ID UNSUP_METADATA UNSUP_METADATA_MASK BAD_EXPERIMENTER BAD_EXP_TYPE BAD_LEN EPERM DUP_INST")],
  4: ["OFPBMC", s("BAD_TYPE BAD_LEN BAD_TAG BAD_DL_ADDR_MASK BAD_NW_ADDR_MASK BAD_WILDCARDS BAD_FIELD BAD_VALUE BAD_MASK BAD_PREREQ DUP_FIELD EPERM")],
  5: ["OFPFMFC", s("UNKNOWN TABLE_FULL BAD_TABLE_ID OVERLAP EPERM BAD_TIMEOUT BAD_COMMAND BAD_FLAGS CANT_SYNC BAD_PRIORITY IS_SYNC")],
  17: ["OFPBFC", s("UNKNOWN EPERM BAD_ID BUNDLE_EXIST BUNDLE_CLOSED OUT_OF_BUNDLES BAD_TYPE BAD_FLAGS MSG_BAD_LEN MSG_BAD_XID MSG_UNSUP MSG_CONFLICT MSG_TOO_MANY MSG_FAILED TIMEOUT BUNDLE_IN_PROGRESS")],
};

/** The name of an OFPT_ERROR body (`OFPBAC_BAD_OUT_PORT (type 2, code 4)`), Nicira extension errors included. */
export function describeError(body: Buffer): string {
  if (body.length < 4) return "malformed error message";
  const type = body.readUInt16BE(0);
  const code = body.readUInt16BE(2);
  if (type === 0xffff && body.length >= 8) {
    const exp = body.readUInt32BE(4);
    return `${exp === NX_VENDOR_ID ? "Nicira" : `experimenter 0x${exp.toString(16)}`} error ${code}`;
  }
  const t = ERRORS[type];
  const name = t?.[1][code];
  return `${t && name ? `${t[0]}_${name}` : "error"} (type ${type}, code ${code})`;
}
