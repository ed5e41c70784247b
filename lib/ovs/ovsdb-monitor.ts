// A long-lived OVSDB watch: connect, monitor, keep a table cache, emit row events, reconnect with backoff and reconcile.
import { connect, DEFAULT_TIMEOUT_MS, type Op, type OvsdbClient, type TransactOptions } from "./ovsdb.ts";
import type { MonitorRequest, Row, TableUpdates } from "./ovsdb-values.ts";
import { applyUpdate, newCache, reconcile, ChangeKind, type RowChange, type TableCache } from "./ovsdb-cache.ts";
import { CniError, messageOf, tryAgainLater } from "../cni/errors.ts";

export { ChangeKind, type RowChange } from "./ovsdb-cache.ts";

/** Callbacks of a session; each is optional. A handler that throws is reported to `error`, never to the session. */
export interface SessionHandlers<T extends string> {
  /**
   * The session is connected and monitoring. `reconnect` is false the first time. The events of the
   * reconciliation with the fresh initial state (rows added, changed or removed meanwhile) follow it.
   */
  connected?(info: { reconnect: boolean; attempts: number }): void;
  /** The connection was lost (not after close()); the session reconnects by itself. */
  disconnected?(reason: CniError): void;
  /** A row appeared (also every row of the first initial state). */
  added?(change: RowChange<T>): void;
  /** A row's monitored columns changed. */
  changed?(change: RowChange<T>): void;
  /** A row was deleted (also rows found gone after a reconnect). */
  removed?(change: RowChange<T>): void;
  /** A failed (re)connection attempt, or a handler that threw. Default: process.emitWarning. */
  error?(err: unknown): void;
}

/** Options of a session. */
export interface SessionOptions {
  /** First reconnect delay (default 100 ms); doubled after each failed attempt. */
  minBackoffMs?: number;
  /** Largest reconnect delay (default 5000 ms). */
  maxBackoffMs?: number;
  /** Connect and monitor-request timeout (default 2000 ms). */
  timeoutMs?: number;
  /** Send an echo every this many ms while connected; no reply within timeoutMs drops the connection (default 5000, 0: off). */
  probeIntervalMs?: number;
  /** The monitor id used on the wire (default "ovsplane-watch"). */
  monitorId?: string;
}

/** Tables to watch: a list of names (all columns) or a table-to-MonitorRequest record. */
export type WatchTables<T extends string> = readonly T[] | Readonly<Record<T, MonitorRequest>>;

/**
 * One long-lived watch on an OVSDB server. It keeps the process alive until close() (an agent wants
 * that). While connected, the cache mirrors the monitored tables; across a reconnect it is kept and
 * reconciled against the new initial state, so consumers only ever see row events.
 */
export class OvsdbSession<T extends string = string> {
  private readonly cache: TableCache;
  private readonly requests: Readonly<Record<string, MonitorRequest>>;
  private readonly opts: Required<SessionOptions>;
  private client: OvsdbClient | null = null;
  private closed = false;
  private everConnected = false;
  private wake: (() => void) | null = null;
  private waiters: { resolve(): void; reject(e: Error): void }[] = [];

  /** Use watchOvsdb() (which also starts it), or start() yourself. */
  constructor(
    /** `unix:PATH` or `tcp:HOST:PORT`. */
    readonly endpoint: string,
    tables: WatchTables<T>,
    private readonly handlers: SessionHandlers<T> = {},
    opts: SessionOptions = {},
  ) {
    this.requests = Array.isArray(tables)
      ? Object.fromEntries((tables as readonly T[]).map((t) => [t, {}]))
      : (tables as Readonly<Record<string, MonitorRequest>>);
    this.cache = newCache(Object.keys(this.requests));
    this.opts = {
      minBackoffMs: opts.minBackoffMs ?? 100,
      maxBackoffMs: opts.maxBackoffMs ?? 5000,
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      probeIntervalMs: opts.probeIntervalMs ?? 5000,
      monitorId: opts.monitorId ?? "ovsplane-watch",
    };
  }

  /** Starts the connect/monitor/reconnect loop (once). */
  start(): this {
    void this.loop();
    return this;
  }

  /** Whether a connection with an active monitor is up now. */
  get connected(): boolean {
    return this.client !== null;
  }

  /** The cached rows of a watched table, by uuid (read-only view; empty before the first connection). */
  rows(table: T): ReadonlyMap<string, Readonly<Row>> {
    return this.cache.get(table) ?? new Map();
  }

  /** Resolves once connected (at once if it is); code 11 after timeoutMs, or if close() comes first. */
  whenConnected(timeoutMs = 10_000): Promise<void> {
    if (this.client) return Promise.resolve();
    if (this.closed) return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      const w = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e: Error) => (clearTimeout(timer), reject(e)),
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(tryAgainLater(`OVSDB at ${this.endpoint}`, `not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Runs a transaction on the current connection; throws code 11 while disconnected (see OvsdbClient.transact). */
  transact(ops: Op[], opts: TransactOptions = {}): Promise<any[]> {
    if (!this.client) return Promise.reject(this.closed ? this.closedError() : tryAgainLater(`OVSDB at ${this.endpoint}`, "disconnected, reconnecting"));
    return this.client.transact(ops, opts);
  }

  /** Stops for good: closes the connection, cancels any reconnect, emits nothing more. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client?.close();
    this.client = null;
    this.wake?.();
    for (const w of this.waiters.splice(0)) w.reject(this.closedError());
  }

  private closedError(): CniError {
    return tryAgainLater(`OVSDB session at ${this.endpoint}`, "closed");
  }

  private async loop(): Promise<void> {
    let delay = this.opts.minBackoffMs;
    let attempts = 0;
    while (!this.closed) {
      attempts++;
      let client: OvsdbClient | null = null;
      try {
        client = await connect(this.endpoint, { timeoutMs: this.opts.timeoutMs });
        if (this.closed) return client.close();
        const c = client;
        await c.monitor(this.opts.monitorId, this.requests, (u, initial) => this.onUpdate(c, u, initial, attempts), this.opts.timeoutMs);
        delay = this.opts.minBackoffMs;
        attempts = 0;
        const reason = await this.watchConnection(c);
        if (this.closed) return;
        this.client = null;
        this.emit(() => this.handlers.disconnected?.(reason));
      } catch (e) {
        client?.close();
        if (this.closed) return;
        this.report(e);
      }
      await this.sleep(delay);
      delay = Math.min(delay * 2, this.opts.maxBackoffMs);
    }
  }

  /** Called synchronously by the client: the initial state makes the session connected, then its events follow. */
  private onUpdate(c: OvsdbClient, updates: TableUpdates, initial: boolean, attempts: number): void {
    if (this.closed || !c.isOpen) return;
    let changes: RowChange<T>[];
    if (initial) {
      this.client = c;
      const reconnect = this.everConnected;
      this.everConnected = true;
      this.emit(() => this.handlers.connected?.({ reconnect, attempts }));
      for (const w of this.waiters.splice(0)) w.resolve();
      changes = reconcile<T>(this.cache, updates, Object.keys(this.requests));
    } else {
      changes = applyUpdate<T>(this.cache, updates);
    }
    for (const ch of changes) {
      if (this.closed) return;
      const h = ch.kind === ChangeKind.Added ? this.handlers.added : ch.kind === ChangeKind.Changed ? this.handlers.changed : this.handlers.removed;
      if (h) this.emit(() => h.call(this.handlers, ch));
    }
  }

  /** Resolves with the reason once `c` ends; probes it with echo every probeIntervalMs and drops it when one fails. */
  private async watchConnection(c: OvsdbClient): Promise<CniError> {
    const ended = c.whenClosed();
    if (this.opts.probeIntervalMs <= 0) return ended;
    let timer: NodeJS.Timeout | undefined;
    const probe = (): void => {
      timer = setTimeout(() => {
        c.echo(this.opts.timeoutMs).then(probe, (e: unknown) => {
          if (c.isOpen) c.close();
          this.report(e);
        });
      }, this.opts.probeIntervalMs);
    };
    probe();
    try {
      return await ended;
    } finally {
      clearTimeout(timer);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /** Runs a handler; what it throws goes to report(), never into the session. */
  private emit(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.report(e);
    }
  }

  /** Hands err to the `error` handler, or to process.emitWarning without one (or if it throws). */
  private report(err: unknown): void {
    try {
      if (this.handlers.error) return this.handlers.error(err);
    } catch (e) {
      err = e;
    }
    process.emitWarning(`OVSDB session at ${this.endpoint}: ${messageOf(err)}`);
  }
}

/** Creates and starts an OvsdbSession watching `tables` at `endpoint` (see OvsdbSession). */
export function watchOvsdb<T extends string>(
  endpoint: string,
  tables: WatchTables<T>,
  handlers: SessionHandlers<T> = {},
  opts: SessionOptions = {},
): OvsdbSession<T> {
  return new OvsdbSession<T>(endpoint, tables, handlers, opts).start();
}
