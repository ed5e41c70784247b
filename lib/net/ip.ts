// IP address and CIDR helpers (own parser, arithmetic on bigint, Go-compatible text; no dependency to load).

/** Address family: 4 or 6. */
export type IpFamily = 4 | 6;

/** Bits in an address of each family. */
export const FAMILY_BITS = { 4: 32, 6: 128 } as const;

/** A reason an address or CIDR was refused (the message says why, without repeating the input). */
export class IpParseError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = "IpParseError";
  }
}

/** An immutable IP address: family plus value; prints in Go's net.IP.String() form. */
export class IpAddress {
  constructor(
    readonly family: IpFamily,
    readonly value: bigint,
  ) {}

  /** Canonical text (IPv4 dotted quad; IPv6 as RFC 5952 / Go print it). */
  toString(): string {
    return this.family === 4 ? formatV4(this.value) : formatV6(this.value);
  }

  /** JSON shows the text form (bigint cannot be serialised). */
  toJSON(): string {
    return this.toString();
  }

  /** True when both are the same family and value. */
  equals(other: IpAddress): boolean {
    return this.family === other.family && this.value === other.value;
  }

  /** The address n further on, or null when that leaves the family's space. */
  add(n: bigint | number): IpAddress | null {
    const v = this.value + BigInt(n);
    if (v < 0n || v > maxValue(this.family)) return null;
    return new IpAddress(this.family, v);
  }
}

/** A parsed CIDR such as "10.0.0.5/24". */
export interface Cidr {
  /** The address part as canonical text ("10.0.0.5"). */
  address: string;
  /** The prefix length. */
  prefix: number;
  /** 4 or 6. */
  family: IpFamily;
  /** The network address as canonical text ("10.0.0.0"). */
  network: string;
  /** The address part. */
  ip: IpAddress;
  /** The network address. */
  base: IpAddress;
}

const V4_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const V4_RE = new RegExp(`^${V4_OCTET}(\\.${V4_OCTET}){3}$`);
const HEX_GROUP_RE = /^[0-9a-fA-F]{1,4}$/;
/** Dotted-quad IPv4 with each octet captured (canonical decimal: no leading zeros). */
const V4_PARTS_RE = new RegExp(`^${V4_OCTET}\\.${V4_OCTET}\\.${V4_OCTET}\\.${V4_OCTET}$`);

function maxValue(family: IpFamily): bigint {
  return (1n << BigInt(FAMILY_BITS[family])) - 1n;
}

function formatV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join(".");
}

/** IPv6 text exactly as Go's net.IP.String(): longest (first on ties) run of >= 2 zero groups becomes "::". */
function formatV6(v: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(":");
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** Checks an address's characters and each group (hex groups of 1-4 digits, an embedded IPv4 part last). */
function precheck(s: string): void {
  if (s.includes(":")) {
    if (!/^[0-9a-fA-F:.]+$/.test(s)) throw new IpParseError("not an IP address");
    const parts = s.split(":");
    const last = parts[parts.length - 1] ?? "";
    for (const [i, p] of parts.entries()) {
      if (p === "") continue;
      if (i === parts.length - 1 && last.includes(".")) {
        if (!V4_RE.test(p)) throw new IpParseError("not an IP address (bad embedded IPv4 part)");
      } else if (!HEX_GROUP_RE.test(p)) {
        throw new IpParseError("not an IP address (IPv6 groups have 1-4 hex digits)");
      }
    }
  } else if (!V4_RE.test(s)) {
    throw new IpParseError("not an IP address");
  }
}

/** Parses an address ("10.0.0.1", "fd00::1"); IPv4-mapped IPv6 becomes IPv4, as in Go. Throws IpParseError. */
export function parseIp(s: string): IpAddress {
  if (typeof s !== "string" || s === "") throw new IpParseError("not an IP address");
  const v4 = V4_PARTS_RE.exec(s);
  if (v4) return new IpAddress(4, BigInt(((+v4[1]! << 24) >>> 0) + (+v4[2]! << 16) + (+v4[3]! << 8) + +v4[4]!)); // the common case, no BigInt parsing
  precheck(s);
  if (!s.includes(":")) throw new IpParseError("not an IP address");
  const v = parseV6(s);
  if (v >> 32n === 0xffffn) return new IpAddress(4, v & 0xffffffffn); // IPv4-mapped
  return new IpAddress(6, v);
}

/** The 16-bit groups of one side of an IPv6 address's "::" (an embedded IPv4 part gives two). */
function v6Groups(part: string): number[] {
  if (part === "") return [];
  return part.split(":").flatMap((g) => {
    if (g === "") throw new IpParseError("not an IP address (empty IPv6 group)");
    const v4 = V4_PARTS_RE.exec(g);
    if (v4) return [(+v4[1]! << 8) | +v4[2]!, (+v4[3]! << 8) | +v4[4]!];
    return [parseInt(g, 16)];
  });
}

/** The value of IPv6 text that passed precheck: at most one "::", standing for one or more zero groups. */
function parseV6(s: string): bigint {
  const at = s.indexOf("::");
  if (at >= 0 && s.indexOf("::", at + 1) >= 0) throw new IpParseError("not an IP address (more than one ::)");
  const head = v6Groups(at >= 0 ? s.slice(0, at) : s);
  const tail = at >= 0 ? v6Groups(s.slice(at + 2)) : [];
  const n = head.length + tail.length;
  if (at >= 0 ? n > 7 : n !== 8) throw new IpParseError("not an IP address (IPv6 has 8 groups)");
  const groups = [...head, ...Array<number>(8 - n).fill(0), ...tail];
  return groups.reduce((v, g) => (v << 16n) | BigInt(g), 0n);
}

/** An IPv4 CIDR as plain numbers: its first and last address and its prefix. */
export interface V4Range {
  first: number;
  last: number;
  prefix: number;
}

const V4_CIDR_RE = new RegExp(`^${V4_OCTET}\\.${V4_OCTET}\\.${V4_OCTET}\\.${V4_OCTET}/([0-9]|[12][0-9]|3[0-2])$`);

/**
 * A dotted-quad IPv4 CIDR ("10.1.2.0/24") as numbers, or undefined for anything else (then parseCidr
 * says what is wrong). No BigInt: a conflist of 1,000 peers is read in well under a millisecond by a
 * process that has no time to warm its JIT up.
 */
export function parseV4Range(s: string): V4Range | undefined {
  const m = V4_CIDR_RE.exec(s);
  if (!m) return undefined;
  const ip = ((+m[1]! << 24) >>> 0) + (+m[2]! << 16) + (+m[3]! << 8) + +m[4]!;
  const prefix = +m[5]!;
  const size = 2 ** (32 - prefix);
  const first = ip - (ip % size);
  return { first, last: first + size - 1, prefix };
}

/** A number 0..2^32-1 as a dotted quad. */
export function v4Text(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** parseIp that answers undefined instead of throwing. */
export function tryParseIp(s: string): IpAddress | undefined {
  try {
    return parseIp(s);
  } catch {
    return undefined;
  }
}

/** True when s is an IP address. */
export function isIp(s: string): boolean {
  return tryParseIp(s) !== undefined;
}

function toIp(ip: string | IpAddress): IpAddress {
  return typeof ip === "string" ? parseIp(ip) : ip;
}

function toCidr(c: string | Cidr): Cidr {
  return typeof c === "string" ? parseCidr(c) : c;
}

/** The canonical text of an address (e.g. "FD00:0::01" becomes "fd00::1"). */
export function canonicalIp(s: string): string {
  return parseIp(s).toString();
}

/** The text of an address. */
export function ipToString(ip: IpAddress): string {
  return ip.toString();
}

/** The family of an address or CIDR text. */
export function ipFamily(ip: string | IpAddress): IpFamily {
  if (typeof ip === "string" && ip.includes("/")) return parseCidr(ip).family;
  return toIp(ip).family;
}

/** The prefix length as a netmask address (e.g. 24 → 255.255.255.0). */
export function prefixMask(family: IpFamily, prefix: number): IpAddress {
  const host = BigInt(FAMILY_BITS[family] - prefix);
  return new IpAddress(family, maxValue(family) ^ ((1n << host) - 1n));
}

/** Parses "address/prefix"; the address keeps its host bits (see `base` for the network). Throws IpParseError. */
export function parseCidr(s: string): Cidr {
  if (typeof s !== "string") throw new IpParseError("not a CIDR (address/prefix)");
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(s);
  if (!m) throw new IpParseError("not a CIDR (address/prefix)");
  const ip = parseIp(m[1]!);
  if (ip.family === 4 && m[1]!.includes(":")) throw new IpParseError("IPv4-mapped IPv6 addresses are not supported in a CIDR");
  const prefix = Number(m[2]);
  if (prefix > FAMILY_BITS[ip.family]) throw new IpParseError("prefix too long");
  const base = new IpAddress(ip.family, ip.value & prefixMask(ip.family, prefix).value);
  return { address: ip.toString(), prefix, family: ip.family, network: base.toString(), ip, base };
}

/** "address/prefix" in canonical text; with masked, the network address instead of the address. */
export function cidrToString(c: Cidr, opts: { masked?: boolean } = {}): string {
  return `${opts.masked ? c.network : c.address}/${c.prefix}`;
}

/** Number of addresses in a CIDR. */
export function cidrSize(c: string | Cidr): bigint {
  const p = toCidr(c);
  return 1n << BigInt(FAMILY_BITS[p.family] - p.prefix);
}

/** The network address (first address) of a CIDR. */
export function cidrFirst(c: string | Cidr): IpAddress {
  return toCidr(c).base;
}

/** The last address of a CIDR (the IPv4 broadcast address). */
export function cidrLast(c: string | Cidr): IpAddress {
  const p = toCidr(c);
  return new IpAddress(p.family, p.base.value + cidrSize(p) - 1n);
}

/** First usable host: network+1 (the network itself for /31, /32, /127, /128). */
export function firstUsable(c: string | Cidr): IpAddress {
  const p = toCidr(c);
  return FAMILY_BITS[p.family] - p.prefix <= 1 ? p.base : new IpAddress(p.family, p.base.value + 1n);
}

/** Last usable host: IPv4 broadcast-1, IPv6 the last address (the last address itself for /31, /32, /127, /128). */
export function lastUsable(c: string | Cidr): IpAddress {
  const p = toCidr(c);
  const last = cidrLast(p);
  return p.family === 4 && 32 - p.prefix > 1 ? new IpAddress(4, last.value - 1n) : last;
}

/** True when ip lies in the CIDR (different families never match). */
export function cidrContains(c: string | Cidr, ip: string | IpAddress): boolean {
  const p = toCidr(c);
  const a = toIp(ip);
  if (a.family !== p.family) return false;
  return (a.value & prefixMask(p.family, p.prefix).value) === p.base.value;
}

/** True when two CIDRs share at least one address. */
export function cidrsOverlap(a: string | Cidr, b: string | Cidr): boolean {
  const x = toCidr(a);
  const y = toCidr(b);
  if (x.family !== y.family) return false;
  const shorter = x.prefix <= y.prefix ? x : y;
  const other = shorter === x ? y : x;
  return cidrContains(shorter, other.base);
}

/** The next address, or null past the end of the family's space. */
export function nextIp(ip: string | IpAddress): IpAddress | null {
  return toIp(ip).add(1);
}

/** The previous address, or null before the start of the family's space. */
export function prevIp(ip: string | IpAddress): IpAddress | null {
  return toIp(ip).add(-1);
}

/** Orders addresses: IPv4 before IPv6, then by value. Negative, zero or positive. */
export function compareIps(a: string | IpAddress, b: string | IpAddress): number {
  const x = toIp(a);
  const y = toIp(b);
  if (x.family !== y.family) return x.family - y.family;
  return x.value < y.value ? -1 : x.value > y.value ? 1 : 0;
}
