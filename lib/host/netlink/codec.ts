// The netlink wire format (pure): nlmsghdr, rtattr (nested too), NLMSG_ERROR/ack and NLMSG_DONE, multi-part dumps.

/** nlmsghdr.nlmsg_type values of the netlink core. */
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3 } as const;

/** nlmsghdr.nlmsg_flags. */
export const NLM_F = { REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, ECHO: 0x8, DUMP: 0x300, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400 } as const;

/** Size of nlmsghdr. */
export const NLMSG_HDRLEN = 16;

/** One attribute: a type and either raw bytes or nested attributes. */
export interface Attr {
  type: number;
  value: Uint8Array | readonly Attr[];
}

/** One netlink message as read or written: header fields and the payload after nlmsghdr. */
export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Uint8Array;
}

/** `n` rounded up to the 4-byte alignment of netlink. */
export const align4 = (n: number): number => (n + 3) & ~3;

/** The bytes of several arrays, one after the other. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Attributes encoded back to back, each padded to 4 bytes (the padding is not in rta_len). */
export function encodeAttrs(attrs: readonly Attr[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const a of attrs) {
    const body = a.value instanceof Uint8Array ? a.value : encodeAttrs(a.value);
    const buf = new Uint8Array(align4(4 + body.length));
    const dv = new DataView(buf.buffer);
    dv.setUint16(0, 4 + body.length, true);
    dv.setUint16(2, a.type, true);
    buf.set(body, 4);
    parts.push(buf);
  }
  return concat(parts);
}

/** One message: nlmsghdr, the fixed header of its family (ifinfomsg, ifaddrmsg, rtmsg ...), then its attributes. */
export function encodeMessage(m: { type: number; flags: number; seq: number; pid?: number }, header: Uint8Array, attrs: readonly Attr[] = []): Uint8Array {
  const body = concat([header, encodeAttrs(attrs)]);
  const buf = new Uint8Array(NLMSG_HDRLEN + body.length);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, buf.length, true);
  dv.setUint16(4, m.type, true);
  dv.setUint16(6, m.flags, true);
  dv.setUint32(8, m.seq >>> 0, true);
  dv.setUint32(12, m.pid ?? 0, true);
  buf.set(body, NLMSG_HDRLEN);
  return buf;
}

/** The messages in one datagram (a kernel reply may hold several, a dump part many). */
export function decodeMessages(buf: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = dv.getUint32(off, true);
    if (len === 0) break; // the zero padding after a request (iproute2 sends its whole request struct)
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw new Error(`netlink: truncated message at byte ${off} (length ${len} of ${buf.length})`);
    out.push({ type: dv.getUint16(off + 4, true), flags: dv.getUint16(off + 6, true), seq: dv.getUint32(off + 8, true), pid: dv.getUint32(off + 12, true), payload: buf.subarray(off + NLMSG_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

/** The attributes in `buf` from `offset` on, by type (the last one wins; NLA_F_NESTED and NLA_F_NET_BYTEORDER masked off). */
export function parseAttrs(buf: Uint8Array, offset = 0): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = offset;
  while (off + 4 <= buf.length) {
    const len = dv.getUint16(off, true);
    if (len < 4 || off + len > buf.length) break;
    out.set(dv.getUint16(off + 2, true) & 0x3fff, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

/** The errno of an NLMSG_ERROR payload as a positive number; 0 is an ack. */
export function errorOf(m: NlMessage): number {
  return -new DataView(m.payload.buffer, m.payload.byteOffset, 4).getInt32(0, true);
}

/** The extended ack's text (NLMSGERR_ATTR_MSG) of an NLMSG_ERROR, when the kernel sent one. */
export function extAckOf(m: NlMessage): string | undefined {
  if (!(m.flags & 0x200 /* NLM_F_ACK_TLVS */)) return undefined;
  // After the error code comes the request: its header only when NLM_F_CAPPED (0x100), else the whole of it.
  const reqLen = m.flags & 0x100 ? NLMSG_HDRLEN : new DataView(m.payload.buffer, m.payload.byteOffset + 4, 4).getUint32(0, true);
  const msg = parseAttrs(m.payload, 4 + align4(reqLen)).get(1);
  return msg ? cstr(msg) : undefined;
}

/** A NUL-terminated (or not) string attribute's text. */
export function cstr(b: Uint8Array): string {
  const end = b.indexOf(0);
  return new TextDecoder().decode(end < 0 ? b : b.subarray(0, end));
}

/** Reads a little-endian u32 attribute. */
export const u32Of = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);

/** Attribute builders: u8, u32, strings with and without NUL, raw bytes, nested. */
export const attr = {
  u8: (type: number, v: number): Attr => ({ type, value: Uint8Array.of(v) }),
  u32: (type: number, v: number): Attr => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return { type, value: b };
  },
  /** A string with its NUL (IFLA_IFNAME). */
  strz: (type: number, s: string): Attr => ({ type, value: concat([new TextEncoder().encode(s), Uint8Array.of(0)]) }),
  /** A string without NUL (IFLA_INFO_KIND, IFLA_IFALIAS as iproute2 sends them). */
  str: (type: number, s: string): Attr => ({ type, value: new TextEncoder().encode(s) }),
  bytes: (type: number, value: Uint8Array): Attr => ({ type, value }),
  nested: (type: number, value: readonly Attr[]): Attr => ({ type, value }),
} as const;

/** What the answers to one request said so far: its messages, whether it is over, the errno (0: none). */
export interface Reply {
  items: NlMessage[];
  done: boolean;
  errno: number;
  /** The kernel's extended ack text, when an error carried one. */
  extAck?: string;
}

/**
 * Adds one datagram's messages to the reply of request `seq`: a dump (NLM_F_MULTI parts) ends with
 * NLMSG_DONE, a request with NLM_F_ACK with NLMSG_ERROR (errno 0: the ack), a plain get with its one
 * answer; an NLMSG_ERROR ends any of them. Messages of other requests are skipped.
 */
export function absorb(reply: Reply, msgs: readonly NlMessage[], seq: number): Reply {
  for (const m of msgs) {
    if (m.seq !== seq >>> 0 || reply.done) continue;
    if (m.type === NLMSG.ERROR) {
      const ext = extAckOf(m);
      Object.assign(reply, { done: true, errno: errorOf(m) }, ext ? { extAck: ext } : {});
    } else if (m.type === NLMSG.DONE) reply.done = true;
    else if (m.type !== NLMSG.NOOP) {
      reply.items.push(m);
      if (!(m.flags & NLM_F.MULTI)) reply.done = true;
    }
  }
  return reply;
}

/** Names and texts of the errnos a netlink call or its syscalls may meet. */
const ERRNO: Record<number, [string, string]> = {
  1: ["EPERM", "Operation not permitted"], 2: ["ENOENT", "No such file or directory"], 9: ["EBADF", "Bad file descriptor"],
  11: ["EAGAIN", "Resource temporarily unavailable"], 12: ["ENOMEM", "Cannot allocate memory"], 13: ["EACCES", "Permission denied"],
  16: ["EBUSY", "Device or resource busy"], 17: ["EEXIST", "File exists"], 19: ["ENODEV", "No such device"],
  22: ["EINVAL", "Invalid argument"], 24: ["EMFILE", "Too many open files"], 34: ["ERANGE", "Numerical result out of range"],
  95: ["EOPNOTSUPP", "Operation not supported"], 97: ["EAFNOSUPPORT", "Address family not supported by protocol"],
  99: ["EADDRNOTAVAIL", "Cannot assign requested address"], 101: ["ENETUNREACH", "Network is unreachable"],
  105: ["ENOBUFS", "No buffer space available"], 110: ["ETIMEDOUT", "Connection timed out"],
};

/** `ENODEV (No such device)`, or `errno N` for one not in the table. */
export function errnoText(n: number): string {
  const e = ERRNO[n];
  return e ? `${e[0]} (${e[1]})` : `errno ${n}`;
}

/** A failed netlink request or syscall: the errno, the operation and where (interface, netns). */
export class NetlinkError extends Error {
  constructor(
    readonly errno: number,
    readonly op: string,
    readonly where: string,
    readonly extAck?: string,
  ) {
    super(`${op} in ${where}: ${errnoText(errno)}${extAck ? `: ${extAck}` : ""}`);
    this.name = "NetlinkError";
  }

  /** The errno's name (ENODEV …). */
  get code(): string {
    return ERRNO[this.errno]?.[0] ?? `errno ${this.errno}`;
  }
}
