// rtnetlink messages (pure): builders of the link, address and route requests ovsplane sends, readers of the kernel's answers.
import { attr, type Attr, concat, cstr, encodeAttrs, encodeMessage, NLM_F, type NlMessage, parseAttrs, u32Of } from "./codec.ts";

/** rtnetlink message types. */
export const RTM = { NEWLINK: 16, DELLINK: 17, GETLINK: 18, NEWADDR: 20, DELADDR: 21, GETADDR: 22, NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26 } as const;

/** IFLA_* attributes of ifinfomsg. */
export const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, LINK: 5, LINKINFO: 18, IFALIAS: 20, EXT_MASK: 29, NET_NS_FD: 28 } as const;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
/** IFA_* attributes of ifaddrmsg. */
export const IFA = { ADDRESS: 1, LOCAL: 2 } as const;
/** RTA_* attributes of rtmsg. */
export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, METRICS: 8, TABLE: 15 } as const;
const RTAX_MTU = 2;
const AF_INET = 2;
const AF_PACKET = 17;
/** ifi_flags bit of an administratively up link. */
export const IFF_UP = 1;
const RT_TABLE_MAIN = 254;
/** rtm_protocol of routes added by an administrator (iproute2's default). */
export const RTPROT_BOOT = 3;
const RT_SCOPE = { UNIVERSE: 0, LINK: 253, NOWHERE: 255 } as const;
const RTN_UNICAST = 1;
/** rtm_flags bit: the gateway is on the link even if no prefix says so. */
export const RTNH_F_ONLINK = 4;

/** A link by index (as iproute2 addresses it), or by name (index 0 and IFLA_IFNAME). */
export type LinkRef = { index: number } | { name: string };

function ifinfomsg(o: { family?: number; index?: number; flags?: number; change?: number } = {}): Uint8Array {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setUint8(0, o.family ?? 0);
  dv.setInt32(4, o.index ?? 0, true);
  dv.setUint32(8, o.flags ?? 0, true);
  dv.setUint32(12, o.change ?? 0, true);
  return b;
}

function ifaddrmsg(o: { family?: number; prefixlen?: number; index?: number }): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint8(0, o.family ?? 0);
  dv.setUint8(1, o.prefixlen ?? 0);
  dv.setUint32(4, o.index ?? 0, true);
  return b;
}

function rtmsg(o: { dstLen?: number; table?: number; protocol?: number; scope?: number; type?: number; flags?: number }): Uint8Array {
  return Uint8Array.of(AF_INET, o.dstLen ?? 0, 0, 0, o.table ?? 0, o.protocol ?? 0, o.scope ?? 0, o.type ?? 0, ...u32le(o.flags ?? 0));
}

const u32le = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

/** `aa:bb:cc:dd:ee:ff` as 6 bytes. */
export function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(mac.split(":").map((h) => parseInt(h, 16)));
}

/** 6 bytes as `aa:bb:cc:dd:ee:ff`. */
export function macText(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** A dotted quad as 4 bytes (network order). */
export function ipv4Bytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split(".").map(Number));
}

/** 4 bytes as a dotted quad. */
export const ipv4Text = (b: Uint8Array): string => [...b.subarray(0, 4)].join(".");

/** `A.B.C.D/len` split into address and prefix length (no prefix: /32). */
export function cidr(s: string): { ip: string; len: number } {
  const [ip, len] = s.split("/");
  return { ip: ip!, len: len === undefined ? 32 : Number(len) };
}

const refIndex = (l: LinkRef) => ("index" in l ? l.index : 0);
const refName = (l: LinkRef): Attr[] => ("name" in l ? [attr.strz(IFLA.IFNAME, l.name)] : []);

/** One end of a veth pair. */
export interface VethEnd {
  name: string;
  mac: string;
  mtu: number;
}

/** RTM_NEWLINK of a veth pair here whose peer is created straight in the netns of `peerNetnsFd`. */
export function newVeth(seq: number, v: VethEnd & { peer: VethEnd; peerNetnsFd: number }): Uint8Array {
  const end = (e: VethEnd) => [attr.bytes(IFLA.ADDRESS, macBytes(e.mac)), attr.u32(IFLA.MTU, e.mtu)];
  const peer = [...end(v.peer), attr.u32(IFLA.NET_NS_FD, v.peerNetnsFd), attr.strz(IFLA.IFNAME, v.peer.name)];
  const info = [attr.str(IFLA_INFO_KIND, "veth"), attr.nested(IFLA_INFO_DATA, [attr.bytes(VETH_INFO_PEER, concat([ifinfomsg(), encodeAttrs(peer)]))])];
  return encodeMessage({ type: RTM.NEWLINK, flags: NLM_F.REQUEST | NLM_F.ACK | NLM_F.EXCL | NLM_F.CREATE, seq }, ifinfomsg(), [
    ...end(v),
    attr.strz(IFLA.IFNAME, v.name),
    attr.nested(IFLA.LINKINFO, info),
  ]);
}

/** What RTM_NEWLINK on an existing link changes. */
export interface LinkChange {
  up?: boolean;
  mtu?: number;
  /** IFLA_IFALIAS (`ip link set … alias`). */
  alias?: string;
  /** A new name (IFLA_IFNAME; only with a LinkRef by index). */
  rename?: string;
}

/** RTM_NEWLINK that changes an existing link (`ip link set`): state, MTU, alias, name. */
export function setLink(seq: number, link: LinkRef, c: LinkChange): Uint8Array {
  const up = c.up === undefined ? {} : { flags: c.up ? IFF_UP : 0, change: IFF_UP };
  return encodeMessage({ type: RTM.NEWLINK, flags: NLM_F.REQUEST | NLM_F.ACK, seq }, ifinfomsg({ index: refIndex(link), ...up }), [
    ...refName(link),
    ...(c.mtu !== undefined ? [attr.u32(IFLA.MTU, c.mtu)] : []),
    ...(c.rename !== undefined ? [attr.strz(IFLA.IFNAME, c.rename)] : []),
    ...(c.alias !== undefined ? [attr.str(IFLA.IFALIAS, c.alias)] : []),
  ]);
}

/** RTM_DELLINK (`ip link del`). */
export function delLink(seq: number, link: LinkRef): Uint8Array {
  return encodeMessage({ type: RTM.DELLINK, flags: NLM_F.REQUEST | NLM_F.ACK, seq }, ifinfomsg({ index: refIndex(link) }), refName(link));
}

/** RTM_GETLINK of one link by name (as iproute2 resolves a name: no VF, no stats). */
export function getLink(seq: number, name: string): Uint8Array {
  return encodeMessage({ type: RTM.GETLINK, flags: NLM_F.REQUEST, seq }, ifinfomsg(), [attr.u32(IFLA.EXT_MASK, 9), attr.strz(IFLA.IFNAME, name)]);
}

/** RTM_GETLINK dump of every link (of one kind, `ip link show type veth`, when the kernel filters; read the kind back). */
export function dumpLinks(seq: number, kind?: string): Uint8Array {
  return encodeMessage({ type: RTM.GETLINK, flags: NLM_F.REQUEST | NLM_F.DUMP, seq }, ifinfomsg({ family: AF_PACKET }), [
    attr.u32(IFLA.EXT_MASK, 1),
    ...(kind ? [attr.nested(IFLA.LINKINFO, [attr.str(IFLA_INFO_KIND, kind)])] : []),
  ]);
}

/** RTM_NEWADDR of an IPv4 address with prefix (`ip addr add`, or `replace`). */
export function newAddr(seq: number, o: { index: number; address: string; replace?: boolean }): Uint8Array {
  const { ip, len } = cidr(o.address);
  const flags = NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | (o.replace ? NLM_F.REPLACE : NLM_F.EXCL);
  return encodeMessage({ type: RTM.NEWADDR, flags, seq }, ifaddrmsg({ family: AF_INET, prefixlen: len, index: o.index }), [
    attr.bytes(IFA.LOCAL, ipv4Bytes(ip)),
    attr.bytes(IFA.ADDRESS, ipv4Bytes(ip)),
  ]);
}

/** RTM_DELADDR (`ip addr del`). */
export function delAddr(seq: number, o: { index: number; address: string }): Uint8Array {
  const { ip, len } = cidr(o.address);
  return encodeMessage({ type: RTM.DELADDR, flags: NLM_F.REQUEST | NLM_F.ACK, seq }, ifaddrmsg({ family: AF_INET, prefixlen: len, index: o.index }), [
    attr.bytes(IFA.LOCAL, ipv4Bytes(ip)),
    attr.bytes(IFA.ADDRESS, ipv4Bytes(ip)),
  ]);
}

/** RTM_GETADDR dump (of one link's addresses with strict checking; read the index back). */
export function dumpAddrs(seq: number, index = 0): Uint8Array {
  return encodeMessage({ type: RTM.GETADDR, flags: NLM_F.REQUEST | NLM_F.DUMP, seq }, ifaddrmsg({ index }));
}

/** An IPv4 route of the main table. */
export interface RouteSpec {
  /** `A.B.C.D/len` (`0.0.0.0/0` for the default route). */
  dst: string;
  oif: number;
  gateway?: string;
  /** RTNH_F_ONLINK: the gateway is on this link whatever the addresses say. */
  onlink?: boolean;
  /** rtm_protocol (default RTPROT_BOOT, as `ip route add`). */
  protocol?: number;
  metric?: number;
  prefsrc?: string;
  mtu?: number;
}

/** RTM_NEWROUTE (`ip route add`, or `replace`); attributes in the order iproute2 writes them. */
export function newRoute(seq: number, r: RouteSpec & { replace?: boolean }): Uint8Array {
  const { ip, len } = cidr(r.dst);
  const flags = NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | (r.replace ? NLM_F.REPLACE : NLM_F.EXCL);
  const hdr = rtmsg({ dstLen: len, table: RT_TABLE_MAIN, protocol: r.protocol ?? RTPROT_BOOT, scope: r.gateway ? RT_SCOPE.UNIVERSE : RT_SCOPE.LINK, type: RTN_UNICAST, flags: r.onlink ? RTNH_F_ONLINK : 0 });
  return encodeMessage({ type: RTM.NEWROUTE, flags, seq }, hdr, [
    attr.bytes(RTA.DST, ipv4Bytes(ip)),
    ...(r.prefsrc ? [attr.bytes(RTA.PREFSRC, ipv4Bytes(r.prefsrc))] : []),
    ...(r.gateway ? [attr.bytes(RTA.GATEWAY, ipv4Bytes(r.gateway))] : []),
    ...(r.metric !== undefined ? [attr.u32(RTA.PRIORITY, r.metric)] : []),
    attr.u32(RTA.OIF, r.oif),
    ...(r.mtu ? [attr.nested(RTA.METRICS, [attr.u32(RTAX_MTU, r.mtu)])] : []),
  ]);
}

/** RTM_DELROUTE of a route by destination, device, protocol and metric (`ip route del … proto P metric M`). */
export function delRoute(seq: number, r: { dst: string; oif: number; protocol: number; metric: number }): Uint8Array {
  const { ip, len } = cidr(r.dst);
  return encodeMessage({ type: RTM.DELROUTE, flags: NLM_F.REQUEST | NLM_F.ACK, seq }, rtmsg({ dstLen: len, table: RT_TABLE_MAIN, protocol: r.protocol, scope: RT_SCOPE.NOWHERE }), [
    attr.bytes(RTA.DST, ipv4Bytes(ip)),
    attr.u32(RTA.PRIORITY, r.metric),
    attr.u32(RTA.OIF, r.oif),
  ]);
}

/** RTM_GETROUTE dump of the IPv4 main table (filtered by the kernel under strict checking; read the fields back). */
export function dumpRoutes(seq: number, o: { protocol?: number; oif?: number } = {}): Uint8Array {
  return encodeMessage({ type: RTM.GETROUTE, flags: NLM_F.REQUEST | NLM_F.DUMP, seq }, rtmsg({ protocol: o.protocol ?? 0 }), [
    attr.u32(RTA.TABLE, RT_TABLE_MAIN),
    ...(o.oif ? [attr.u32(RTA.OIF, o.oif)] : []),
  ]);
}

/** A link as RTM_NEWLINK reports it. */
export interface LinkInfo {
  index: number;
  name: string;
  flags: number;
  mtu?: number;
  mac?: string;
  alias?: string;
  /** IFLA_INFO_KIND (`veth`, `openvswitch` …). */
  kind?: string;
}

/** Reads an RTM_NEWLINK. */
export function parseLink(m: NlMessage): LinkInfo {
  const dv = new DataView(m.payload.buffer, m.payload.byteOffset, 16);
  const a = parseAttrs(m.payload, 16);
  const info = a.get(IFLA.LINKINFO);
  const kind = info ? parseAttrs(info).get(IFLA_INFO_KIND) : undefined;
  const mtu = a.get(IFLA.MTU);
  const mac = a.get(IFLA.ADDRESS);
  const alias = a.get(IFLA.IFALIAS);
  return {
    index: dv.getInt32(4, true),
    name: cstr(a.get(IFLA.IFNAME) ?? new Uint8Array()),
    flags: dv.getUint32(8, true),
    ...(mtu ? { mtu: u32Of(mtu) } : {}),
    ...(mac ? { mac: macText(mac) } : {}),
    ...(alias ? { alias: cstr(alias) } : {}),
    ...(kind ? { kind: cstr(kind) } : {}),
  };
}

/** An IPv4 address as RTM_NEWADDR reports it. */
export interface AddrInfo {
  index: number;
  family: number;
  prefixlen: number;
  /** IFA_LOCAL (else IFA_ADDRESS) as a dotted quad; empty for other families. */
  local: string;
}

/** Reads an RTM_NEWADDR. */
export function parseAddr(m: NlMessage): AddrInfo {
  const p = m.payload;
  const a = parseAttrs(p, 8);
  const local = a.get(IFA.LOCAL) ?? a.get(IFA.ADDRESS);
  return { family: p[0]!, prefixlen: p[1]!, index: new DataView(p.buffer, p.byteOffset + 4, 4).getUint32(0, true), local: p[0] === AF_INET && local ? ipv4Text(local) : "" };
}

/** An IPv4 route as RTM_NEWROUTE reports it. */
export interface RouteInfo {
  /** `A.B.C.D/len`. */
  dst: string;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  oif?: number;
  gateway?: string;
  metric?: number;
  prefsrc?: string;
}

/** Reads an RTM_NEWROUTE of the IPv4 family (undefined for other families). */
export function parseRoute(m: NlMessage): RouteInfo | undefined {
  const p = m.payload;
  if (p[0] !== AF_INET) return undefined;
  const a = parseAttrs(p, 12);
  const get = (t: number) => a.get(t);
  const dst = get(RTA.DST);
  const table = get(RTA.TABLE);
  return {
    dst: `${dst ? ipv4Text(dst) : "0.0.0.0"}/${p[1]}`,
    table: table ? u32Of(table) : p[4]!,
    protocol: p[5]!,
    scope: p[6]!,
    type: p[7]!,
    ...(get(RTA.OIF) ? { oif: u32Of(get(RTA.OIF)!) } : {}),
    ...(get(RTA.GATEWAY) ? { gateway: ipv4Text(get(RTA.GATEWAY)!) } : {}),
    ...(get(RTA.PRIORITY) ? { metric: u32Of(get(RTA.PRIORITY)!) } : {}),
    ...(get(RTA.PREFSRC) ? { prefsrc: ipv4Text(get(RTA.PREFSRC)!) } : {}),
  };
}
