// The one OVSDB client (RFC 7047 JSON-RPC over unix:/tcp:): transact, lock, wait for cur_cfg, monitor.
import { parseEndpoint, type Endpoint } from "./endpoint.ts";
import { CniError, Code, messageOf, tryAgainLater } from "../cni/errors.ts";
import { JsonSplitter } from "./jsonstream.ts";
import type { MonitorRequest, TableUpdates } from "./ovsdb-values.ts";
import { openStream, type ByteStream } from "./stream.ts";

export { mapToObject, namedUuid, ovsMap, ovsSet, setToArray, uuid, uuidOf } from "./ovsdb-values.ts";
export type { MonitorRequest, Row, RowUpdate, TableUpdates } from "./ovsdb-values.ts";

/** The database every transaction goes to. */
export const DATABASE = "Open_vSwitch";
/** Default connect, request and lock timeout (ms). */
export const DEFAULT_TIMEOUT_MS = 2000;

/** One RFC 7047 §5.2 operation, e.g. `{ op: "select", table: "Bridge", where: [["name", "==", "br-int"]] }`. */
export interface Op {
  op: string;
  table?: string;
  [key: string]: unknown;
}

/** Options of OvsdbClient.transact(). */
export interface TransactOptions {
  /** Reply timeout (default 2000 ms); on expiry the call throws code 11. */
  timeoutMs?: number;
  /** Return the results even when an operation failed, instead of throwing OvsdbError. */
  allowErrors?: boolean;
}

/**
 * A failed transaction or request (code 100). `index` is the failing operation (ops.length for a
 * commit-time error such as "referential integrity violation", -1 for a JSON-RPC level error);
 * `error` is the RFC 7047 error string, `details` the server's explanation.
 */
export class OvsdbError extends CniError {
  constructor(
    readonly index: number,
    readonly error: string,
    details = "",
    what = "",
  ) {
    super(Code.StepFailed, `OVSDB ${index < 0 ? "request" : `operation ${index}${what ? ` (${what})` : ""}`} failed: ${error}`, details);
    this.name = "OvsdbError";
  }
}

/**
 * Receives a monitor's table updates, in the server's order: first the initial state (`initial`
 * true, every row as an insert), then each `update` notification. Called synchronously from the
 * socket's data handler: it must not throw.
 */
export type MonitorCallback = (updates: TableUpdates, initial: boolean) => void;

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Connects to OVSDB at `unix:/path` or `tcp:HOST:PORT` (`tcp:[v6]:PORT`). A refused connection is
 * tried again until `timeoutMs` (default 2000): ovsdb-server's listen backlog overflows under a burst
 * of CNI calls. A missing socket, or no connection by then, throws code 11 (tryAgainLater); a
 * malformed endpoint throws code 7.
 */
export async function connect(endpoint: string, opts: { timeoutMs?: number } = {}): Promise<OvsdbClient> {
  const target = parseEndpoint("OVSDB endpoint", endpoint);
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  for (;;) {
    try {
      return await connectOnce(target, endpoint, Math.max(50, deadline - Date.now()));
    } catch (e) {
      // Refused while the server is there: its listen backlog is full (a burst of CNI calls). Try again.
      if (!(e instanceof Refused) || Date.now() >= deadline) throw tryAgainLater(`OVSDB at ${endpoint}`, messageOf(e));
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
    }
  }
}

/** A connection refused (ECONNREFUSED, EAGAIN): the server is busy or restarting. */
class Refused extends Error {}

function connectOnce(target: Endpoint, endpoint: string, timeoutMs: number): Promise<OvsdbClient> {
  return new Promise((resolve, reject) => {
    const sock = openStream(target);
    const onError = (e: Error) => fail(e);
    const fail = (e: Error) => {
      clearTimeout(timer);
      sock.destroy();
      const code = (e as NodeJS.ErrnoException).code;
      reject(code === "ECONNREFUSED" || code === "EAGAIN" ? new Refused(messageOf(e)) : e);
    };
    const timer = setTimeout(() => fail(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    sock.once("error", onError);
    sock.once("connect", () => {
      clearTimeout(timer);
      if ("port" in target) sock.setNoDelay(true);
      const client = new OvsdbClient(sock, endpoint);
      sock.off("error", onError);
      resolve(client);
    });
  });
}

/**
 * One JSON-RPC connection to ovsdb-server. Answers the server's echo requests. Holds the socket
 * referenced only while a request, a lock wait or a monitor is outstanding: a one-shot CNI process
 * (which never monitors) cannot be kept alive by a forgotten close(), while an active monitor is a
 * long-lived user and keeps the process alive until monitorCancel() or close(). close() ends it at
 * once. Locks and monitors die with the connection.
 */
export class OvsdbClient {
  private readonly splitter = new JsonSplitter();
  private readonly pending = new Map<number, Pending>();
  private readonly held = new Set<string>();
  private readonly lockWaiters = new Map<string, (err?: Error) => void>();
  private readonly monitors = new Map<string, MonitorCallback>();
  private readonly closeWaiters: ((err: CniError) => void)[] = [];
  private nextId = 1;
  private closed: CniError | null = null;

  /** Use connect(). */
  constructor(
    private readonly sock: ByteStream,
    /** The endpoint, as given to connect(). */
    readonly endpoint: string,
  ) {
    sock.on("data", (d: Buffer) => this.onData(d));
    sock.on("error", (e) => this.shutdown(tryAgainLater(`OVSDB at ${endpoint}`, messageOf(e))));
    sock.on("close", () => this.shutdown(tryAgainLater(`OVSDB at ${endpoint}`, "connection closed")));
    this.updateRef();
  }

  /**
   * Runs one transaction on Open_vSwitch and returns the per-operation results. Throws OvsdbError if
   * any result carries `error` (unless `allowErrors`), code 11 if no reply comes within the timeout.
   */
  async transact(ops: Op[], opts: TransactOptions = {}): Promise<any[]> {
    const results: unknown = await this.request("transact", [DATABASE, ...ops], opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    if (!Array.isArray(results)) throw new OvsdbError(-1, "malformed transact reply", JSON.stringify(results));
    if (!opts.allowErrors) {
      const i = results.findIndex((r) => r !== null && typeof r === "object" && r.error != null);
      if (i >= 0) {
        const op = ops[i];
        throw new OvsdbError(i, String(results[i].error), String(results[i].details ?? ""), op ? `${op.op}${op.table ? ` ${op.table}` : ""}` : "commit");
      }
    }
    return results;
  }

  /**
   * Takes the named lock (RFC 7047 §4.1.8), waiting for the server's "locked" notification while
   * another connection holds it; throws code 11 when not granted within `timeoutMs` (and withdraws
   * the queued request). The lock is released by unlock() or when the connection ends.
   */
  async lock(name: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.held.delete(name);
    try {
      const reply = (await this.request("lock", [name], timeoutMs)) as { locked?: boolean } | null;
      // A "locked" notification in the same chunk as the reply is already recorded in `held`.
      if (reply?.locked === true) this.held.add(name);
      if (this.held.has(name)) return;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => done(tryAgainLater(`OVSDB lock "${name}"`, `held by another client for more than ${timeoutMs} ms`)),
          Math.max(0, deadline - Date.now()),
        );
        const done = (err?: Error) => {
          clearTimeout(timer);
          this.lockWaiters.delete(name);
          this.updateRef();
          if (err) reject(err);
          else resolve();
        };
        this.lockWaiters.set(name, done);
        this.updateRef();
      });
    } catch (e) {
      if (!this.closed) this.send({ method: "unlock", params: [name], id: this.nextId++ }); // reply ignored
      throw e;
    }
  }

  /** Releases (or withdraws the request for) the named lock. */
  async unlock(name: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    this.held.delete(name);
    await this.request("unlock", [name], timeoutMs);
  }

  /** Whether this connection holds the named lock now. */
  holds(name: string): boolean {
    return this.held.has(name);
  }

  /**
   * Starts monitor `id` (RFC 7047 §4.1.5) on Open_vSwitch for the requested tables. The initial
   * state goes to `onUpdate` (with `initial` true) and is also returned; every later `update`
   * notification for `id` goes to `onUpdate`. Throws OvsdbError if the server refuses (e.g. an
   * unknown table or column, or an id already in use), code 11 on timeout or a closed connection.
   */
  async monitor(
    id: string,
    requests: Readonly<Record<string, MonitorRequest>>,
    onUpdate: MonitorCallback,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<TableUpdates> {
    if (this.monitors.has(id)) throw new OvsdbError(-1, "duplicate monitor ID", id);
    let initial: TableUpdates | undefined;
    // The reply is handed to onUpdate in dispatch, before any notification that follows it in the stream.
    this.monitors.set(id, (u, isInitial) => {
      if (isInitial) initial = u;
      onUpdate(u, isInitial);
    });
    try {
      await this.request("monitor", [DATABASE, id, requests], timeoutMs, id);
    } catch (e) {
      this.monitors.delete(id);
      this.updateRef();
      throw e;
    }
    return initial ?? {};
  }

  /** Cancels monitor `id` (RFC 7047 §4.1.7); no notification reaches its callback afterwards. */
  async monitorCancel(id: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    if (!this.monitors.delete(id)) return;
    this.updateRef();
    await this.request("monitor_cancel", [id], timeoutMs);
  }

  /** Sends an `echo` request and waits for the reply: a liveness probe. Throws code 11 on timeout. */
  async echo(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    await this.request("echo", [], timeoutMs);
  }

  /** Whether the connection is still open. */
  get isOpen(): boolean {
    return this.closed === null;
  }

  /** Resolves (never rejects) with the reason once the connection has ended, whoever ended it. */
  whenClosed(): Promise<CniError> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  /** Closes the connection (dropping its locks); outstanding calls fail with code 11. Idempotent. */
  close(): void {
    this.shutdown(tryAgainLater(`OVSDB at ${this.endpoint}`, "connection closed by the client"));
  }

  /** `monitorId`: a monitor reply is also handed to that monitor's callback, synchronously. */
  private request(method: string, params: unknown[], timeoutMs: number, monitorId?: string): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.updateRef();
        reject(tryAgainLater(`OVSDB at ${this.endpoint}`, `no reply to "${method}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const onReply = monitorId === undefined ? resolve : (v: unknown) => {
        this.monitors.get(monitorId)?.(isObject(v) ? (v as TableUpdates) : {}, true);
        resolve(v);
      };
      this.pending.set(id, { resolve: onReply, reject, timer });
      this.updateRef();
      this.send({ method, params, id });
    });
  }

  private send(msg: unknown): void {
    this.sock.write(JSON.stringify(msg));
  }

  private updateRef(): void {
    if (this.closed) return;
    if (this.pending.size > 0 || this.lockWaiters.size > 0 || this.monitors.size > 0) this.sock.ref();
    else this.sock.unref();
  }

  private onData(chunk: Buffer): void {
    let texts: string[];
    try {
      texts = this.splitter.push(chunk);
    } catch (e) {
      return this.shutdown(new CniError(Code.StepFailed, `OVSDB at ${this.endpoint}: protocol error: ${messageOf(e)}`, "", { cause: e }));
    }
    for (const text of texts) {
      let msg: any;
      try {
        msg = JSON.parse(text);
      } catch (e) {
        return this.shutdown(new CniError(Code.StepFailed, `OVSDB at ${this.endpoint}: protocol error: ${messageOf(e)}`, "", { cause: e }));
      }
      if (msg !== null && typeof msg === "object") this.dispatch(msg);
    }
  }

  private dispatch(msg: { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: any }): void {
    if (msg.method === undefined) {
      const p = typeof msg.id === "number" ? this.pending.get(msg.id) : undefined;
      if (!p) return; // late reply to a timed-out request, or to a fire-and-forget unlock
      this.pending.delete(msg.id as number);
      clearTimeout(p.timer);
      this.updateRef();
      if (msg.error == null) p.resolve(msg.result);
      else if (typeof msg.error === "object") p.reject(new OvsdbError(-1, String(msg.error.error ?? JSON.stringify(msg.error)), String(msg.error.details ?? "")));
      else p.reject(new OvsdbError(-1, String(msg.error)));
    } else if (msg.method === "echo" && msg.id != null) {
      if (!this.closed) this.send({ id: msg.id, result: msg.params ?? [], error: null });
    } else if (msg.method === "locked" || msg.method === "stolen") {
      const name = String(Array.isArray(msg.params) ? msg.params[0] : "");
      if (msg.method === "stolen") return void this.held.delete(name);
      this.held.add(name);
      this.lockWaiters.get(name)?.();
    } else if (msg.method === "update" && Array.isArray(msg.params)) {
      const [id, updates] = msg.params as unknown[];
      if (typeof id === "string" && isObject(updates)) this.monitors.get(id)?.(updates as TableUpdates, false);
    } else if (msg.method === "monitor_canceled" && Array.isArray(msg.params)) {
      // ovsdb-server's extension: the server dropped the monitor (e.g. its database went away).
      this.monitors.delete(String(msg.params[0]));
      this.updateRef();
    }
  }

  private shutdown(err: CniError): void {
    if (this.closed) return;
    this.closed = err;
    this.sock.destroy();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const done of [...this.lockWaiters.values()]) done(err);
    this.held.clear();
    this.monitors.clear();
    for (const w of this.closeWaiters.splice(0)) w(err);
  }
}

let curCfgWaits = 0;

/**
 * Waits until `cur_cfg` of the Open_vSwitch row is >= `nextCfg` (the value the caller's transaction gave
 * `next_cfg`, as ovs-vsctl does): ovs-vswitchd has then applied it. Monitors the column, so it returns
 * as soon as ovs-vswitchd writes it, with no polling interval. Throws code 11 when that does not happen
 * within `timeoutMs`.
 */
export async function waitForCurCfg(client: OvsdbClient, nextCfg: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
  const id = `ovsplane-cur-cfg-${++curCfgWaits}`;
  let done: (() => void) | undefined;
  const reached = new Promise<void>((res) => (done = res));
  const check = (u: TableUpdates) => {
    for (const row of Object.values(u.Open_vSwitch ?? {})) {
      const cur = (row as { new?: { cur_cfg?: unknown } }).new?.cur_cfg;
      if (typeof cur === "number" && cur >= nextCfg) done!();
    }
  };
  const deadline = Date.now() + timeoutMs;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await client.monitor(id, { Open_vSwitch: { columns: ["cur_cfg"] } }, check, timeoutMs);
    const late = new Promise<"late">((res) => (timer = setTimeout(() => res("late"), Math.max(0, deadline - Date.now()))));
    if ((await Promise.race([reached, late, client.whenClosed()])) !== undefined) throw new Error("not reached");
  } catch {
    throw tryAgainLater("ovs-vswitchd", `did not apply the configuration within ${timeoutMs} ms`);
  } finally {
    clearTimeout(timer);
    if (client.isOpen) void client.monitorCancel(id).catch(() => undefined); // its reply is not waited for
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
