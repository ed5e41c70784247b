// The byte stream to an OVS endpoint: Bun's native socket in the executable (node:net costs ~3.4 ms of its start-up), node:net under Node.
import { EventEmitter } from "node:events";
import type { Endpoint } from "./endpoint.ts";

/** A listener of a stream event: a chunk for "data", an Error for "error", nothing for "connect" and "close". */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (arg?: any) => void;

/** The events of a stream, as node:net names them. */
export type StreamEvent = "connect" | "data" | "error" | "close";

/**
 * The part of node:net's Socket the OVSDB and OpenFlow clients use. Writes are queued in order and
 * never lost to a full socket; "error" comes at most once, then "close" once.
 */
export interface ByteStream {
  on(event: StreamEvent, fn: Listener): unknown;
  once(event: StreamEvent, fn: Listener): unknown;
  off(event: StreamEvent, fn: Listener): unknown;
  write(data: string | Uint8Array): unknown;
  destroy(): unknown;
  ref(): unknown;
  unref(): unknown;
  setNoDelay(noDelay?: boolean): unknown;
}

/** The part of a Bun socket this module uses. */
interface BunSocket {
  write(data: Uint8Array): number;
  end(): void;
  terminate?(): void;
  ref(): void;
  unref(): void;
  setNoDelay?(noDelay?: boolean): void;
}

/** The socket handlers Bun.connect calls (the socket is the first argument of each). */
interface BunHandlers {
  open(s: BunSocket): void;
  data(s: BunSocket, chunk: Buffer): void;
  drain(s: BunSocket): void;
  close(s: BunSocket): void;
  end(s: BunSocket): void;
  error(s: BunSocket, e: Error): void;
  connectError(s: BunSocket, e: Error): void;
}

type BunConnect = (opts: ({ unix: string } | { hostname: string; port: number }) & { socket: BunHandlers }) => Promise<BunSocket>;
const bunConnect = (globalThis as { Bun?: { connect: BunConnect } }).Bun?.connect;

/** Opens a stream to an endpoint: "connect" once it is open, or "error" then "close". */
export function openStream(target: Endpoint): ByteStream {
  if (bunConnect) return new BunStream(target, bunConnect);
  return process.getBuiltinModule("node:net").createConnection(target);
}

/** A Bun socket behind node:net's event names, with a write queue (Bun's write() takes what fits, the rest waits for drain). */
class BunStream extends EventEmitter implements ByteStream {
  private sock?: BunSocket;
  private readonly queue: Uint8Array[] = [];
  private referenced = true;
  private noDelay = false;
  private ended = false;

  constructor(target: Endpoint, connect: BunConnect) {
    super();
    const handlers: BunHandlers = {
      open: (s) => {
        if (this.ended) return s.terminate ? s.terminate() : s.end();
        this.sock = s;
        if (!this.referenced) s.unref();
        if (this.noDelay) s.setNoDelay?.(true);
        this.flush();
        queueMicrotask(() => this.ended || this.emit("connect")); // see fail()
      },
      data: (_s, chunk) => void (this.ended || this.emit("data", chunk)),
      drain: () => this.flush(),
      close: () => this.finish(),
      end: (s) => {
        this.finish();
        s.end();
      },
      error: (_s, e) => this.fail(e),
      connectError: (_s, e) => this.fail(e),
    };
    const where = "path" in target ? { unix: target.path } : { hostname: target.host, port: target.port };
    connect({ ...where, socket: handlers }).catch((e: Error) => this.fail(e));
  }

  write(data: string | Uint8Array): boolean {
    if (this.ended) return false;
    this.queue.push(typeof data === "string" ? Buffer.from(data, "utf8") : data);
    this.flush();
    return true;
  }

  destroy(): void {
    if (this.ended) return;
    const s = this.sock;
    this.finish();
    if (s) (s.terminate ?? s.end).call(s);
  }

  ref(): void {
    this.referenced = true;
    this.sock?.ref();
  }

  unref(): void {
    this.referenced = false;
    this.sock?.unref();
  }

  setNoDelay(noDelay = true): void {
    this.noDelay = noDelay;
    this.sock?.setNoDelay?.(noDelay);
  }

  /** Writes what the socket takes now; the rest stays queued for the next drain. */
  private flush(): void {
    while (this.sock && !this.ended && this.queue.length) {
      const head = this.queue[0]!;
      const n = this.sock.write(head);
      if (n < 0) return this.fail(new Error("write on a closed socket"));
      if (n < head.length) {
        this.queue[0] = head.subarray(n);
        return;
      }
      this.queue.shift();
    }
  }

  // Events are emitted from a microtask: Bun may call open or connectError within connect() itself,
  // before the caller has its listeners on (seen: 235 of 300 concurrent connects lost that way).
  private fail(e: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.length = 0;
    queueMicrotask(() => {
      if (this.listenerCount("error")) this.emit("error", e);
      this.emit("close");
    });
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.length = 0;
    queueMicrotask(() => this.emit("close"));
  }
}
