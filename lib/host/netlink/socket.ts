// The syscall edge of netlink, Bun only: bun:ffi against libc (socket, bind, sendto, recv, open, setns, ioctl, close), write through node:fs.
import { dlopen, ptr, read } from "bun:ffi";
import { statSync, write } from "node:fs";
import { absorb, decodeMessages, NetlinkError, type NlMessage, type Reply } from "./codec.ts";

const libc = dlopen("libc.so.6", {
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  sendto: { args: ["i32", "ptr", "u64", "i32", "ptr", "u32"], returns: "i64" },
  recv: { args: ["i32", "ptr", "u64", "i32"], returns: "i64" },
  open: { args: ["ptr", "i32"], returns: "i32" },
  setns: { args: ["i32", "i32"], returns: "i32" },
  ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  __errno_location: { args: [], returns: "ptr" },
});
const c = libc.symbols as unknown as Record<string, (...a: unknown[]) => number>;

const AF_NETLINK = 16;
const AF_INET = 2;
const SOCK_RAW = 3;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0x80000;
const O_CLOEXEC = 0x80000;
const CLONE_NEWNET = 0x40000000;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SOL_NETLINK = 270;
const NETLINK_EXT_ACK = 11;
const NETLINK_GET_STRICT_CHK = 12;
const SIOCETHTOOL = 0x8946;
const ETHTOOL_STXCSUM = 0x17;

const errno = (): number => read.i32(c.__errno_location!());
const cString = (s: string) => Buffer.from(`${s}\0`);

/** Throws a NetlinkError with the current errno when a libc call returned a negative value. */
function check(rc: number, op: string, where: string): number {
  if (rc < 0) throw new NetlinkError(errno(), op, where);
  return rc;
}

/** Opens a file read-only (close-on-exec), e.g. a netns. */
export function openFd(path: string): number {
  return check(c.open!(cString(path), O_CLOEXEC), "open", path);
}

/** Closes a file descriptor (errors ignored: nothing to do about them). */
export function closeFd(fd: number): void {
  c.close!(fd);
}

/**
 * Runs `fn` with the calling thread in the netns at `nsPath` and puts it back: the sockets `fn` opens
 * stay bound to that netns. Synchronous on purpose: no other JavaScript runs on this thread meanwhile.
 */
export function inNetns<T>(nsPath: string, fn: () => T): T {
  const self = openFd("/proc/thread-self/ns/net");
  let target = -1;
  try {
    target = openFd(nsPath);
    check(c.setns!(target, CLONE_NEWNET), "setns", nsPath);
    try {
      // setns acted on this thread: /proc/thread-self is the thread that made the call.
      if (statSync("/proc/thread-self/ns/net").ino !== statSync(nsPath).ino) throw new NetlinkError(22, "setns (thread check)", nsPath);
      return fn();
    } finally {
      // Failing to come back would leave every later call in the pod's netns: no way to go on.
      if (c.setns!(self, CLONE_NEWNET) < 0) throw new Error(`setns back to the own netns failed (errno ${errno()}): aborting`);
    }
  } finally {
    if (target >= 0) closeFd(target);
    closeFd(self);
  }
}

/** A NETLINK_ROUTE socket of the netns it was opened in; blocking requests, one at a time. */
export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly buf = new Uint8Array(65536);

  private constructor(
    private readonly fd: number,
    /** Where it talks, for error messages (a netns path, or "this netns"). */
    readonly where: string,
  ) {}

  /** Opens one here, or in the netns at nsPath. */
  static open(nsPath?: string): NetlinkSocket {
    const mk = () => check(c.socket!(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0), "socket(AF_NETLINK)", nsPath ?? "this netns");
    const fd = nsPath ? inNetns(nsPath, mk) : mk();
    const one = Uint8Array.of(1, 0, 0, 0);
    c.setsockopt!(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
    c.setsockopt!(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, one, 4);
    const tv = new Uint8Array(16);
    new DataView(tv.buffer).setBigInt64(0, 5n, true); // 5 s: the kernel always answers, this is a guard only
    c.setsockopt!(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
    const sa = new Uint8Array(12);
    new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
    try {
      check(c.bind!(fd, sa, 12), "bind(AF_NETLINK)", nsPath ?? "this netns");
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    return new NetlinkSocket(fd, nsPath ?? "this netns");
  }

  /** Sends the request `build(seq)` makes and reads its whole answer (ack, one message or a dump). */
  request(build: (seq: number) => Uint8Array, op: string): Reply {
    const seq = this.next();
    const msg = build(seq);
    const kernel = new Uint8Array(12);
    new DataView(kernel.buffer).setUint16(0, AF_NETLINK, true);
    check(Number(c.sendto!(this.fd, msg, msg.length, 0, kernel, 12)), op, this.where);
    return this.receive(seq, op);
  }

  /**
   * request() whose send runs on a thread of the runtime's pool (node:fs write; an unconnected netlink
   * socket sends to the kernel): the kernel does the work inside the send (deleting a veth takes it
   * 13–35 ms), so this thread goes on with other work meanwhile. The answer is queued before the send
   * returns and read here after it. No other request on this socket until it settles.
   */
  async requestAsync(build: (seq: number) => Uint8Array, op: string): Promise<Reply> {
    const seq = this.next();
    const msg = build(seq);
    await new Promise<void>((resolve, reject) =>
      write(this.fd, msg, (e) => (e ? reject(new NetlinkError(Math.abs(e.errno ?? 5), op, this.where)) : resolve())),
    );
    return this.receive(seq, op);
  }

  private next(): number {
    return (this.seq = (this.seq + 1) >>> 0);
  }

  /** Reads the whole answer to request `seq`. */
  private receive(seq: number, op: string): Reply {
    const reply: Reply = { items: [], done: false, errno: 0 };
    while (!reply.done) {
      const n = check(Number(c.recv!(this.fd, this.buf, this.buf.length, 0)), op, this.where);
      // Copy: the receive buffer is reused by the next recv.
      absorb(reply, decodeMessages(this.buf.slice(0, n)), seq);
    }
    return reply;
  }

  /** request() that throws the kernel's error as a NetlinkError. */
  call(build: (seq: number) => Uint8Array, op: string): NlMessage[] {
    const r = this.request(build, op);
    if (r.errno) throw new NetlinkError(r.errno, op, this.where, r.extAck);
    return r.items;
  }

  close(): void {
    closeFd(this.fd);
  }
}

/** Turns TX checksum offload off on a link of the netns at nsPath (`ethtool -K <ifname> tx off`, ETHTOOL_STXCSUM). */
export function txChecksumOff(nsPath: string, ifname: string): void {
  const fd = inNetns(nsPath, () => check(c.socket!(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket(AF_INET)", nsPath));
  try {
    const value = new Uint8Array(8);
    new DataView(value.buffer).setUint32(0, ETHTOOL_STXCSUM, true); // data (offset 4) 0: off
    const ifr = new Uint8Array(40);
    ifr.set(Buffer.from(ifname).subarray(0, 15));
    new DataView(ifr.buffer).setBigUint64(16, BigInt(ptr(value)), true);
    check(c.ioctl!(fd, SIOCETHTOOL, ifr), `ethtool ioctl ETHTOOL_STXCSUM on ${ifname}`, nsPath);
  } finally {
    closeFd(fd);
  }
}
