// An OpenFlow 1.4 connection to ovs-vswitchd: atomic bundles, flow dumps, echo; one-shot wrappers for CNI processes.
import { CniError, Code, messageOf, tryAgainLater } from "../cni/errors.ts";
import { parseEndpoint } from "./endpoint.ts";
import { openStream, type ByteStream } from "./stream.ts";
import type { FlowOp } from "./flow.ts";
import {
  aggregateRequest, bundleAdd, bundleControl, BundleCtrl, decodeAggregateCount, decodeFlowStats, DEFAULT_TIMEOUT_MS, describeError, describeOp, encodeFlowMod, flowStatsRequest,
  helloMessage, helloOffers14, ofMessage, OFPMP_AGGREGATE_STATS, OFPMP_FLOW_DESC, OFPMPF_REPLY_MORE, OFPT, type FlowEntry, type FlowFilter,
} from "./openflow.ts";

/** Options of connect() and of each exchange. */
export interface NativeOptions {
  /** Time for connecting, and for each exchange after it (default 5000 ms); on expiry code 11. */
  timeoutMs?: number;
}

/** What an exchange in flight gets: every message with one of its xids, and the end of the connection. */
interface Exchange {
  xids: ReadonlySet<number> | ((xid: number) => boolean);
  onMessage(type: number, xid: number, body: Buffer, version: number): void;
  onClose(why: string): void;
}

/**
 * One OpenFlow 1.4 connection (unix: or tcp: endpoint), for a one-shot CNI process or a long-lived agent:
 * version negotiation, framing, one xid per message (incrementing from 1, the HELLO), ECHO_REQUESTs
 * answered. Exchanges may overlap; each has its own timeout. When the switch is absent, closes, or does
 * not answer in time, calls reject with CniError code 11 (tryAgainLater); a switch that refuses
 * something gives code 100.
 */
export class OpenFlowConnection {
  private rx: Buffer = Buffer.alloc(0);
  private xidCounter = 0;
  private bundleIds = 0;
  private readonly exchanges = new Set<Exchange>();
  private closedWhy: string | undefined;

  private constructor(
    /** The endpoint as given (`unix:/path`, `tcp:HOST:PORT`), for messages. */
    readonly endpoint: string,
    private readonly sock: ByteStream,
    private readonly timeoutMs: number,
  ) {}

  /** The last xid sent on this connection (1 after the HELLO). */
  get xid(): number {
    return this.xidCounter;
  }

  /** True once the connection is closed (by either side). */
  get closed(): boolean {
    return this.closedWhy !== undefined;
  }

  /**
   * Connects, sends HELLO offering 1.4 and waits for the switch's HELLO. Rejects with code 7 for a
   * malformed endpoint, 11 when nothing answers within `timeoutMs`, 100 when the switch lacks 1.4.
   */
  static connect(endpoint: string, opts: NativeOptions = {}): Promise<OpenFlowConnection> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let conn: OpenFlowConnection;
    try {
      const to = parseEndpoint("ofSocket", endpoint);
      conn = new OpenFlowConnection(endpoint, openStream(to), timeoutMs);
      if ("port" in to) conn.sock.setNoDelay(true);
    } catch (e) {
      return Promise.reject(e);
    }
    const c = conn;
    let phase = "connecting";
    c.sock.on("data", (chunk: Buffer) => c.onData(chunk));
    c.sock.on("error", (e) => c.shutdown(phase === "connecting" ? `cannot connect: ${messageOf(e)}` : messageOf(e)));
    c.sock.on("close", () => c.shutdown("connection closed"));
    c.sock.once("connect", () => {
      phase = "waiting for hello";
      c.sock.write(helloMessage(c.nextXid()));
    });
    return c.exchange<OpenFlowConnection>(timeoutMs, () => phase, (ex, resolve, reject) => {
      ex.xids = () => true; // the switch's HELLO has its own xid
      ex.onMessage = (type, xid, body, version) => {
        if (type === OFPT.Hello) {
          if (helloOffers14(version, body)) resolve(c);
          else reject(new CniError(Code.StepFailed, `${endpoint} does not speak OpenFlow 1.4 (bridge protocols must include OpenFlow14)`));
        } else if (type === OFPT.Error && xid === 1) reject(new CniError(Code.StepFailed, `${endpoint} refused our hello: ${describeError(body)}`));
      };
    }).catch((e: unknown) => {
      c.close();
      throw e;
    });
  }

  /** Round trip of an ECHO_REQUEST (ms): a liveness probe. */
  echo(opts: NativeOptions = {}): Promise<number> {
    const t0 = performance.now();
    const xid = this.nextXid();
    return this.exchange<number>(opts.timeoutMs ?? this.timeoutMs, () => "waiting for the echo reply", (ex, resolve) => {
      ex.xids = new Set([xid]);
      ex.onMessage = (type) => void (type === OFPT.EchoReply && resolve(performance.now() - t0));
      this.sock.write(ofMessage(OFPT.EchoRequest, xid, Buffer.from("ovsplane")));
    });
  }

  /**
   * Applies `ops` as ONE atomic, ordered bundle, the way `ovs-ofctl bundle` does: BUNDLE_CONTROL open, one
   * BUNDLE_ADD_MESSAGE per flow mod and a barrier (one write), then COMMIT only if the switch rejected
   * nothing, else DISCARD: on any error nothing of the bundle is applied. Rejects with code 100 naming the
   * error and the flow the switch rejected; with a plain Error (before sending anything) when an op
   * cannot be encoded. No ops: nothing sent.
   */
  bundle(ops: readonly FlowOp[], opts: NativeOptions = {}): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    const first = this.xidCounter + 2;
    let msgs: Buffer[];
    try {
      msgs = ops.map((op, i) => encodeFlowMod(op, first + i));
    } catch (e) {
      return Promise.reject(e);
    }
    const id = ++this.bundleIds;
    const open = this.nextXid();
    const adds = msgs.map((m) => bundleAdd(this.nextXid(), id, m));
    const barrier = this.nextXid();
    const commit = barrier + 1;
    this.xidCounter = commit;
    const errors: { xid: number; text: string }[] = [];
    let phase = "waiting for the bundle to be checked";
    let opened = false;
    const what = (xid: number) => (ops[xid - first] ? describeOp(ops[xid - first]!) : ({ [open]: "bundle open", [barrier]: "barrier", [commit]: "bundle commit" })[xid] ?? `xid ${xid}`);
    const rejected = () => {
      const e = errors.find((x) => ops[x.xid - first]) ?? errors[0]!;
      const more = errors.length > 1 ? ` (${errors.length - 1} more error${errors.length > 2 ? "s" : ""})` : "";
      return new CniError(Code.StepFailed, `OpenFlow bundle on ${this.endpoint} rejected, nothing applied: ${e.text} for ${what(e.xid)}${more}`);
    };
    return this.exchange<void>(opts.timeoutMs ?? this.timeoutMs, () => phase, (ex, resolve, reject) => {
      ex.xids = (xid) => xid >= open && xid <= commit;
      const closeHook = ex.onClose;
      ex.onClose = (why) => (errors.length ? reject(rejected()) : closeHook(why));
      ex.onMessage = (type, xid, body) => {
        if (type === OFPT.Error) {
          errors.push({ xid, text: describeError(body) });
          if (xid === commit) reject(rejected());
        } else if (type === OFPT.BarrierReply && xid === barrier) {
          if (!opened && !errors.length) errors.push({ xid: open, text: "no OPEN_REPLY before the barrier reply" });
          if (errors.length) {
            this.sock.write(bundleControl(this.nextXid(), id, BundleCtrl.DiscardRequest));
            return reject(rejected());
          }
          phase = "waiting for the commit";
          this.sock.write(bundleControl(commit, id, BundleCtrl.CommitRequest));
        } else if (type === OFPT.BundleControl && body.length >= 6) {
          const ctl = body.readUInt16BE(4);
          if (xid === open && ctl === BundleCtrl.OpenReply) opened = true;
          if (xid === commit && ctl === BundleCtrl.CommitReply) return errors.length ? reject(rejected()) : resolve();
        }
      };
      this.sock.write(Buffer.concat([bundleControl(open, id, BundleCtrl.OpenRequest), ...adds, ofMessage(OFPT.BarrierRequest, barrier)]));
    });
  }

  /**
   * Reads the flows a filter selects (OFPMP_FLOW_DESC; replies flagged REPLY_MORE are joined), decoded as
   * oxm.ts does (canonical typed flows) with their counters. Rejects with code 100 when the switch refuses
   * the request or a flow is outside our vocabulary (the message names it).
   */
  dumpFlows(filter: FlowFilter = {}, opts: NativeOptions = {}): Promise<FlowEntry[]> {
    const out: FlowEntry[] = [];
    return this.multipart<FlowEntry[]>({ what: "flow dump", type: OFPMP_FLOW_DESC, build: (xid) => flowStatsRequest(xid, filter), opts }, (body, flags) => {
      out.push(...decodeFlowStats(body));
      return flags & OFPMPF_REPLY_MORE ? undefined : out;
    });
  }

  /** The number of flows a filter selects (OFPMP_AGGREGATE_STATS: the switch counts, nothing is sent back per flow). */
  countFlows(filter: FlowFilter = {}, opts: NativeOptions = {}): Promise<number> {
    return this.multipart<number>({ what: "flow count", type: OFPMP_AGGREGATE_STATS, build: (xid) => aggregateRequest(xid, filter), opts }, (body) => decodeAggregateCount(body));
  }

  /**
   * One multipart request and its replies of `type`: each reply's body (after its 8-byte header) goes to
   * onReply with its flags, until onReply answers something. Code 100 when the switch refuses the request
   * or onReply throws (the message says why).
   */
  private multipart<T>(m: { what: string; type: number; build: (xid: number) => Buffer; opts: NativeOptions }, onReply: (body: Buffer, flags: number) => T | undefined): Promise<T> {
    let req: Buffer;
    const xid = this.xidCounter + 1;
    try {
      req = m.build(xid);
    } catch (e) {
      return Promise.reject(e);
    }
    this.nextXid();
    const fail = (why: string) => new CniError(Code.StepFailed, `OpenFlow ${m.what} on ${this.endpoint}: ${why}`);
    return this.exchange<T>(m.opts.timeoutMs ?? this.timeoutMs, () => `waiting for the ${m.what}`, (ex, resolve, reject) => {
      ex.xids = new Set([xid]);
      ex.onMessage = (type, _xid, body) => {
        if (type === OFPT.Error) return reject(fail(`refused: ${describeError(body)}`));
        if (type !== OFPT.MultipartReply || body.length < 8 || body.readUInt16BE(0) !== m.type) return;
        let done: T | undefined;
        try {
          done = onReply(body.subarray(8), body.readUInt16BE(2));
        } catch (e) {
          return reject(fail(messageOf(e)));
        }
        if (done !== undefined) resolve(done);
      };
      this.sock.write(req);
    });
  }

  /** Closes the connection; exchanges in flight reject with code 11. Safe to call twice. */
  close(): void {
    this.shutdown("connection closed by us");
    this.sock.destroy();
  }

  private nextXid(): number {
    this.xidCounter = (this.xidCounter + 1) >>> 0;
    return this.xidCounter;
  }

  /** Runs one exchange: a timer, registration for its messages, and code 11 when the connection ends. */
  private exchange<T>(
    timeoutMs: number,
    phase: () => string,
    start: (ex: Exchange, resolve: (v: T) => void, reject: (e: unknown) => void) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const unavailable = (why: string) => tryAgainLater("ovs-vswitchd", `${this.endpoint}: ${why}`);
      if (this.closedWhy !== undefined) return reject(unavailable(this.closedWhy));
      const done = () => {
        clearTimeout(timer);
        this.exchanges.delete(ex);
      };
      const ex: Exchange = {
        xids: new Set<number>(),
        onMessage: () => undefined,
        onClose: (why) => {
          done();
          reject(unavailable(`${why} (${phase()})`));
        },
      };
      const timer = setTimeout(() => ex.onClose(`no answer within ${timeoutMs} ms`), timeoutMs);
      this.exchanges.add(ex);
      try {
        start(ex, (v) => (done(), resolve(v)), (e) => (done(), reject(e)));
      } catch (e) {
        done();
        reject(e);
      }
    });
  }

  private shutdown(why: string): void {
    if (this.closedWhy !== undefined) return;
    this.closedWhy = why;
    this.sock.destroy();
    for (const ex of [...this.exchanges]) ex.onClose(why);
  }

  private onData(chunk: Buffer): void {
    this.rx = this.rx.length ? Buffer.concat([this.rx, chunk]) : chunk;
    while (this.rx.length >= 8 && this.closedWhy === undefined) {
      const len = this.rx.readUInt16BE(2);
      if (len < 8) return this.shutdown(`malformed OpenFlow message (length ${len})`);
      if (this.rx.length < len) break;
      const [version, type, xid, body] = [this.rx[0]!, this.rx[1]!, this.rx.readUInt32BE(4), this.rx.subarray(8, len)];
      this.rx = this.rx.subarray(len);
      if (type === OFPT.EchoRequest) this.sock.write(ofMessage(OFPT.EchoReply, xid, body));
      for (const ex of [...this.exchanges]) {
        if (typeof ex.xids === "function" ? ex.xids(xid) : ex.xids.has(xid)) ex.onMessage(type, xid, body, version);
      }
    }
  }
}

/**
 * Applies `ops` to the switch at `ofSocket` as one atomic bundle on a connection of its own (connect,
 * bundle, close; see OpenFlowConnection.bundle); `timeoutMs` bounds the whole call. No ops: no connection.
 * An op that cannot be encoded throws a plain Error before connecting.
 */
export async function applyFlowsNative(ofSocket: string, ops: readonly FlowOp[], opts: NativeOptions = {}): Promise<void> {
  if (ops.length === 0) return;
  ops.forEach((op, i) => encodeFlowMod(op, i));
  await oneShot(ofSocket, opts, (conn, timeoutMs) => conn.bundle(ops, { timeoutMs }));
}

/** Reads flows from the switch at `ofSocket` on a connection of its own (see OpenFlowConnection.dumpFlows). */
export function dumpFlowsNative(ofSocket: string, filter: FlowFilter = {}, opts: NativeOptions = {}): Promise<FlowEntry[]> {
  return oneShot(ofSocket, opts, (conn, timeoutMs) => conn.dumpFlows(filter, { timeoutMs }));
}

async function oneShot<T>(ofSocket: string, opts: NativeOptions, fn: (c: OpenFlowConnection, timeoutMs: number) => Promise<T>): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const t0 = performance.now();
  const conn = await OpenFlowConnection.connect(ofSocket, { timeoutMs });
  try {
    return await fn(conn, Math.max(1, Math.round(timeoutMs - (performance.now() - t0))));
  } finally {
    conn.close();
  }
}
