// The node's flows: one OpenFlow connection per use (or one held by a long-lived process), reads by cookie, atomic bundles.
import { existsSync } from "node:fs";
import { parseEndpoint } from "../ovs/endpoint.ts";
import { type Flow, type FlowOp } from "../ovs/flow.ts";
import { renderBundle } from "../ovs/flow-text.ts";
import { OpenFlowConnection } from "../ovs/openflow-conn.ts";
import { run, trace } from "../host/exec.ts";
import { CniError, Code } from "../cni/errors.ts";
import { settings } from "../settings.ts";
import type { CookieFilter } from "../dataplane/model.ts";
import { SWITCH_WAIT_MS } from "./lock.ts";
import { openStream } from "../ovs/stream.ts";

/** How long a command waits for ovs-vswitchd's OpenFlow socket. */
export const OF_TIMEOUT_MS = 5000;

/**
 * The switch of one bridge for the span of fn: one OpenFlow connection, closed afterwards. Bundles go
 * over it, or through one `ovs-ofctl bundle` when settings.ofctl (OVSPLANE_OFCTL=1, for debugging).
 */
export async function withSwitch<T>(ofSocket: string, fn: (sw: Switch) => Promise<T>): Promise<T> {
  const conn = await connectWaiting(ofSocket, OF_TIMEOUT_MS);
  try {
    return await fn(new Switch(ofSocket, conn));
  } finally {
    conn.close();
  }
}

/**
 * An OpenFlow connection opened at once and used later: an ADD opens it first, as its check that
 * ovs-vswitchd answers, and writes its flows over it at the end (one connection, not a probe and then
 * another). close() is safe in any state.
 */
export class EarlySwitch {
  private readonly conn: Promise<OpenFlowConnection>;

  /** Starts connecting to ofSocket's bridge (waiting for it, as withSwitch does). */
  constructor(
    readonly ofSocket: string,
    timeoutMs = OF_TIMEOUT_MS,
  ) {
    this.conn = connectWaiting(ofSocket, timeoutMs);
    this.conn.catch(() => undefined); // reported by use()
  }

  /** Resolves once the connection is open; throws what connecting threw. */
  async ready(): Promise<void> {
    await this.conn;
  }

  /** Runs fn with the connection once it is open; throws what connecting threw. */
  async use<T>(fn: (sw: Switch) => Promise<T>): Promise<T> {
    return fn(new Switch(this.ofSocket, await this.conn));
  }

  /** Closes the connection now or, when it is still opening, as soon as it opens. */
  close(): void {
    void this.conn.then((c) => c.close(), () => undefined);
  }
}

/**
 * A long-lived OpenFlow connection (an agent's): reused while it is open and its bridge's socket is the
 * same, reopened on the next use after it closed or after fn failed with it.
 */
export class HeldSwitch {
  private held?: { ofSocket: string; conn: OpenFlowConnection };

  /** Runs fn with the held connection to ofSocket's bridge (opened, waiting for the bridge, when needed). */
  async use<T>(ofSocket: string, fn: (sw: Switch) => Promise<T>): Promise<T> {
    if (!this.held || this.held.conn.closed || this.held.ofSocket !== ofSocket) {
      this.close();
      this.held = { ofSocket, conn: await connectWaiting(ofSocket, OF_TIMEOUT_MS) };
    }
    const held = this.held;
    try {
      return await fn(new Switch(ofSocket, held.conn));
    } catch (e) {
      if (this.held === held) this.close(); // a timed-out exchange may leave the stream out of step
      throw e;
    }
  }

  /** Closes the held connection (the next use opens one). */
  close(): void {
    this.held?.conn.close();
    this.held = undefined;
  }
}

/** A bridge's flow table as this process sees it. */
export class Switch {
  /** Use withSwitch(). */
  constructor(
    readonly ofSocket: string,
    private readonly conn: OpenFlowConnection,
  ) {}

  /** Flows whose cookie matches any of the filters (read back over OpenFlow, no subprocess). */
  async read(filters: readonly CookieFilter[]): Promise<Flow[]> {
    const parts = await Promise.all(filters.map((f) => this.conn.dumpFlows({ cookie: f.cookie, mask: f.mask })));
    return parts.flat().map((x) => x.flow);
  }

  /** The number of flows whose cookie matches any of the filters (counted by the switch). */
  async count(filters: readonly CookieFilter[]): Promise<number> {
    const counts = await Promise.all(filters.map((f) => this.conn.countFlows({ cookie: f.cookie, mask: f.mask })));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Applies changes as one atomic bundle (nothing for no changes). */
  async apply(ops: readonly FlowOp[]): Promise<void> {
    if (!ops.length) return;
    trace(`OpenFlow bundle of ${ops.length} changes to ${this.ofSocket}`);
    if (settings.ofctl) await run(["ovs-ofctl", "-O", "OpenFlow14", "--timeout=5", "bundle", this.ofSocket, "-"], { input: renderBundle(ops) });
    else await this.conn.bundle(ops);
    trace("OpenFlow bundle committed");
  }
}

/** Applies changes atomically as one bundle over a connection of its own. */
export async function applyFlows(ofSocket: string, ops: readonly FlowOp[]): Promise<void> {
  if (!ops.length) return;
  await withSwitch(ofSocket, (sw) => sw.apply(ops));
}

/** Flows whose cookie matches any of the filters, over a connection of its own. */
export function readFlows(ofSocket: string, filters: readonly CookieFilter[]): Promise<Flow[]> {
  return withSwitch(ofSocket, (sw) => sw.read(filters));
}

/**
 * Connects to the bridge's OpenFlow endpoint, waiting (up to timeoutMs) while it is not there yet: a
 * bridge just created in OVSDB gets its management socket only once ovs-vswitchd has opened it, and a
 * burst of ADDs on a fresh node must wait for that, not fail. While the socket is there but refuses (a
 * busy ovs-vswitchd: its backlog overflows while a burst of port changes keeps its main loop
 * reconfiguring), it waits up to SWITCH_WAIT_MS: a DEL that gave up would leave the pod's flows behind.
 */
async function connectWaiting(ofSocket: string, timeoutMs: number): Promise<OpenFlowConnection> {
  const start = Date.now();
  for (;;) {
    const deadline = start + busyTimeout(ofSocket, timeoutMs);
    try {
      return await OpenFlowConnection.connect(ofSocket, { timeoutMs: Math.max(100, deadline - Date.now()) });
    } catch (e) {
      if (Date.now() >= deadline || !(e instanceof CniError && e.code === Code.TryAgainLater)) throw e;
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
    }
  }
}

/** timeoutMs, or SWITCH_WAIT_MS when longer and the endpoint's socket file is there (its switch is busy, not gone). */
function busyTimeout(ofSocket: string, timeoutMs: number): number {
  const ep = parseEndpoint("ofSocket", ofSocket);
  return "path" in ep && existsSync(ep.path) ? Math.max(timeoutMs, SWITCH_WAIT_MS) : timeoutMs;
}

/** True when something (ovs-vswitchd) accepts connections on the OpenFlow endpoint within the timeout. */
export function ofSocketAlive(ofSocket: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = openStream(parseEndpoint("ofSocket", ofSocket));
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}
