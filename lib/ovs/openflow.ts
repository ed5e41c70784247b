// Flow changes straight over the OpenFlow management socket: one atomic OpenFlow 1.4 bundle, no ovs-ofctl spawn.
import { createConnection } from "node:net";
import { parseEndpoint, type Endpoint } from "./endpoint.ts";
import { CniError, Code, messageOf, tryAgainLater } from "../cni/errors.ts";
import { encodeInstructions, encodeMatch, NX_VENDOR_ID } from "./oxm.ts";
import { hex, type FlowOp } from "../dataplane/pipeline.ts";
import { renderFlow } from "../dataplane/render.ts";

/** OpenFlow 1.4's wire version. */
export const OFP14_VERSION = 0x05;
/** The message types we send or read. */
export const OFPT = {
  Hello: 0, Error: 1, EchoRequest: 2, EchoReply: 3, FlowMod: 14, BarrierRequest: 20, BarrierReply: 21, BundleControl: 33, BundleAdd: 34,
} as const;
/** OFPT_BUNDLE_CONTROL types. */
export const BundleCtrl = { OpenRequest: 0, OpenReply: 1, CommitRequest: 4, CommitReply: 5, DiscardRequest: 6 } as const;
/** OFPBF_ATOMIC | OFPBF_ORDERED, as ovs-ofctl bundle sends them. */
export const BUNDLE_FLAGS = 3;
/** Default time for the whole exchange (ms), as `ovs-ofctl --timeout=5`. */
export const DEFAULT_TIMEOUT_MS = 5000;

const ANY = 0xffffffff; // OFPP_ANY, OFPG_ANY, OFP_NO_BUFFER

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

/**
 * An OFPT_FLOW_MOD for one change, byte for byte as `ovs-ofctl -O OpenFlow14` writes it: `add` is
 * OFPFC_ADD with table, priority, cookie, match and instructions; `delete` is OFPFC_DELETE of every
 * table (OFPTT_ALL), any out_port/out_group, by cookie under cookie_mask, with an empty match.
 * Throws an Error naming the flow and the token when it is outside our vocabulary.
 */
export function encodeFlowMod(op: FlowOp, xid: number): Buffer {
  const isAdd = op.op === "add";
  const head = Buffer.alloc(40);
  head.writeBigUInt64BE(isAdd ? op.flow.cookie : op.cookie, 0);
  head.writeBigUInt64BE(isAdd ? 0n : op.mask, 8);
  let tail = [encodeMatch([])];
  if (isAdd) {
    const f = op.flow;
    if (!Number.isInteger(f.table) || f.table < 0 || f.table > 254) throw new Error(`flow "${renderFlow(f)}": table ${f.table} outside 0..254`);
    if (!Number.isInteger(f.priority) || f.priority < 0 || f.priority > 0xffff) throw new Error(`flow "${renderFlow(f)}": bad priority ${f.priority}`);
    try {
      tail = [encodeMatch(f.match), encodeInstructions(f.actions)];
    } catch (e) {
      throw new Error(`cannot encode flow "${renderFlow(f)}": ${messageOf(e)}`);
    }
  }
  head.writeUInt8(isAdd ? op.flow.table : 0xff, 16); // OFPTT_ALL for delete
  head.writeUInt8(isAdd ? 0 : 3, 17); // OFPFC_ADD / OFPFC_DELETE
  head.writeUInt16BE(isAdd ? op.flow.priority : 0x8000, 22); // idle and hard timeout stay 0
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

/** Options of applyFlowsNative(). */
export interface NativeOptions {
  /** Time for connecting and the whole exchange (default 5000 ms); on expiry the call throws code 11. */
  timeoutMs?: number;
}

/**
 * Applies `ops` to the switch at `ofSocket` (`unix:/path` or `tcp:HOST:PORT`) as ONE atomic, ordered
 * OpenFlow 1.4 bundle, the way `ovs-ofctl bundle` does: HELLO, BUNDLE_CONTROL open, one
 * BUNDLE_ADD_MESSAGE per flow mod and a barrier (all in one write), then COMMIT only if the switch
 * rejected nothing (otherwise DISCARD): on any error nothing of the bundle is applied.
 * Throws CniError code 100 naming the error and the flow the switch rejected, code 11 when the switch
 * is not there, closes the connection early or does not answer within `timeoutMs`, and a plain Error
 * (before connecting) when an op is outside the vocabulary we encode. The socket is closed at the end.
 */
export function applyFlowsNative(ofSocket: string, ops: readonly FlowOp[], opts: NativeOptions = {}): Promise<void> {
  if (ops.length === 0) return Promise.resolve();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const bundleId = 1;
  const [HELLO, OPEN, FIRST] = [1, 2, 3];
  const BARRIER = FIRST + ops.length;
  const COMMIT = BARRIER + 1;
  let first: Buffer;
  let to: Endpoint;
  try {
    to = parseEndpoint("ofSocket", ofSocket);
    const adds = ops.map((op, i) => bundleAdd(FIRST + i, bundleId, encodeFlowMod(op, FIRST + i)));
    first = Buffer.concat([helloMessage(HELLO), bundleControl(OPEN, bundleId, BundleCtrl.OpenRequest), ...adds, ofMessage(OFPT.BarrierRequest, BARRIER)]);
  } catch (e) {
    return Promise.reject(e);
  }
  const what = (xid: number): string => {
    const op = ops[xid - FIRST];
    if (op) return `flow ${op.op === "add" ? `add ${renderFlow(op.flow)}` : `delete cookie=${hex(op.cookie)}/${hex(op.mask)}`}`;
    return ({ [HELLO]: "hello", [OPEN]: "bundle open", [BARRIER]: "barrier", [COMMIT]: "bundle commit" } as Record<number, string>)[xid] ?? `xid ${xid}`;
  };
  return new Promise((resolve, reject) => {
    const sock = createConnection(to);
    const errors: { xid: number; text: string }[] = [];
    let phase = "connecting";
    let rx: Buffer = Buffer.alloc(0);
    let settled = false;
    let opened = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    const rejected = () => {
      const e = errors.find((x) => ops[x.xid - FIRST]) ?? errors[0]!;
      const more = errors.length > 1 ? ` (${errors.length - 1} more error${errors.length > 2 ? "s" : ""})` : "";
      return new CniError(Code.StepFailed, `OpenFlow bundle on ${ofSocket} rejected, nothing applied: ${e.text} for ${what(e.xid)}${more}`);
    };
    const unavailable = (why: string) => tryAgainLater("ovs-vswitchd", `${ofSocket}: ${why}`);
    const timer = setTimeout(() => finish(unavailable(`no answer within ${timeoutMs} ms (${phase})`)), timeoutMs);
    sock.once("connect", () => {
      phase = "waiting for the bundle to be checked";
      if ("port" in to) sock.setNoDelay(true);
      sock.write(first);
    });
    sock.on("error", (e) => finish(unavailable(phase === "connecting" ? `cannot connect: ${messageOf(e)}` : messageOf(e))));
    sock.on("close", () => finish(errors.length ? rejected() : unavailable(`connection closed (${phase})`)));
    const onMessage = (type: number, xid: number, body: Buffer, version: number) => {
      if (type === OFPT.Hello) {
        const bitmap = body.length >= 8 && body.readUInt16BE(0) === 1 ? body.readUInt32BE(4) : 1 << version;
        if (!(bitmap & (1 << OFP14_VERSION))) {
          finish(new CniError(Code.StepFailed, `${ofSocket} does not speak OpenFlow 1.4 (bridge protocols must include OpenFlow14)`));
        }
      } else if (type === OFPT.EchoRequest) {
        sock.write(ofMessage(OFPT.EchoReply, xid, body));
      } else if (type === OFPT.Error) {
        errors.push({ xid, text: describeError(body) });
        if (xid === HELLO || xid === COMMIT) finish(rejected());
      } else if (type === OFPT.BarrierReply && xid === BARRIER) {
        if (!opened && !errors.length) errors.push({ xid: OPEN, text: "no OPEN_REPLY before the barrier reply" });
        if (errors.length) {
          sock.write(bundleControl(COMMIT + 1, bundleId, BundleCtrl.DiscardRequest));
          return finish(rejected());
        }
        phase = "waiting for the commit";
        sock.write(bundleControl(COMMIT, bundleId, BundleCtrl.CommitRequest));
      } else if (type === OFPT.BundleControl && body.length >= 6) {
        const ctl = body.readUInt16BE(4);
        if (xid === OPEN && ctl === BundleCtrl.OpenReply) opened = true;
        if (xid === COMMIT && ctl === BundleCtrl.CommitReply) finish(errors.length ? rejected() : undefined);
      }
    };
    sock.on("data", (chunk: Buffer) => {
      rx = rx.length ? Buffer.concat([rx, chunk]) : chunk;
      while (rx.length >= 8 && !settled) {
        const len = rx.readUInt16BE(2);
        if (len < 8) return finish(new CniError(Code.StepFailed, `${ofSocket}: malformed OpenFlow message (length ${len})`));
        if (rx.length < len) break;
        onMessage(rx[1]!, rx.readUInt32BE(4), rx.subarray(8, len), rx[0]!);
        rx = rx.subarray(len);
      }
    });
  });
}
