// Parsing and validation of the host-local compatible IPAM configuration into a typed IpamConfig.
import { invalidConfig, invalidEnv } from "../cni/errors.ts";
import { compareVersions } from "../cni/version.ts";
import { cidrContains, cidrsOverlap, cidrToString, IpAddress, IpParseError, parseCidr, parseIp, type Cidr } from "../net/ip.ts";
import type { DNS, NetConf, Route } from "../cni/types.ts";

/** host-local's default data directory. */
export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

const V4_MAPPED_BASE = new IpAddress(6, 0xffff00000000n);
const V4_MAPPED: Cidr = { address: "::ffff:0:0", prefix: 96, family: 6, network: "::ffff:0:0", ip: V4_MAPPED_BASE, base: V4_MAPPED_BASE };

/** One pool of a range set: a subnet and the inclusive [rangeStart, rangeEnd] handed out from it. */
export interface Pool {
  subnet: Cidr;
  rangeStart: IpAddress;
  rangeEnd: IpAddress;
  gateway: IpAddress;
  /** Where it came from in the config, for messages (e.g. "ipam.ranges[0][1]"). */
  field: string;
}

/** A range set: pools of one family; one address per set is allocated. */
export type RangeSet = Pool[];

/** An address asked for by CNI_ARGS, args.cni.ips or runtimeConfig.ips. */
export interface RequestedIp {
  ip: IpAddress;
  /** Index of the range set it falls in. */
  setIndex: number;
  /** Where it came from (e.g. "CNI_ARGS IP", "runtimeConfig.ips[0]"). */
  field: string;
}

/** The validated IPAM configuration. */
export interface IpamConfig {
  /** The network name (the lease directory under dataDir). */
  network: string;
  dataDir: string;
  rangeSets: RangeSet[];
  routes: Route[];
  /** Path of a resolv.conf-style file to read DNS settings from. */
  resolvConf?: string;
  requested: RequestedIp[];
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses a required or optional address field, inside `subnet` when given. */
function ipField(field: string, value: unknown, subnet?: Cidr): IpAddress {
  if (typeof value !== "string") throw invalidConfig(field, value, "must be an IP address string");
  let ip: IpAddress;
  try {
    ip = parseIp(value);
  } catch (e) {
    throw invalidConfig(field, value, (e as IpParseError).message, e);
  }
  if (subnet && !cidrContains(subnet, ip)) {
    throw invalidConfig(field, value, `not in subnet ${cidrToString(subnet, { masked: true })}`);
  }
  return ip;
}

function cidrField(field: string, value: unknown): Cidr {
  if (typeof value !== "string") throw invalidConfig(field, value, "must be a CIDR string (address/prefix)");
  try {
    return parseCidr(value);
  } catch (e) {
    throw invalidConfig(field, value, (e as IpParseError).message, e);
  }
}

/** Validates one range ({subnet, rangeStart?, rangeEnd?, gateway?}) and fills host-local's defaults. */
export function parsePool(raw: unknown, field: string): Pool {
  if (!isObj(raw)) throw invalidConfig(field, raw, "must be an object with a subnet");
  const subnetField = `${field}.subnet`;
  if (raw.subnet === undefined) throw invalidConfig(subnetField, undefined, "required");
  const subnet = cidrField(subnetField, raw.subnet);
  const hostBits = (subnet.family === 4 ? 32 : 128) - subnet.prefix;
  if (hostBits < 2) throw invalidConfig(subnetField, raw.subnet, `network /${subnet.prefix} too small to allocate from`);
  if (!subnet.ip.equals(subnet.base)) {
    throw invalidConfig(subnetField, raw.subnet, `host bits set; the network address is ${subnet.network}/${subnet.prefix}`);
  }
  if (subnet.family === 6 && cidrsOverlap(subnet, V4_MAPPED)) {
    // Go names ::ffff:a.b.c.d leases as IPv4 addresses; refuse subnets that contain them.
    throw invalidConfig(subnetField, raw.subnet, "contains IPv4-mapped addresses (::ffff:0:0/96)");
  }
  const first = new IpAddress(subnet.family, subnet.base.value + 1n);
  const last = new IpAddress(subnet.family, subnet.base.value + (1n << BigInt(hostBits)) - (subnet.family === 4 ? 2n : 1n));
  const rangeStart = raw.rangeStart === undefined ? first : ipField(`${field}.rangeStart`, raw.rangeStart, subnet);
  const rangeEnd = raw.rangeEnd === undefined ? last : ipField(`${field}.rangeEnd`, raw.rangeEnd, subnet);
  if (rangeEnd.value < rangeStart.value) {
    throw invalidConfig(`${field}.rangeEnd`, rangeEnd.toString(), `before rangeStart ${rangeStart}`);
  }
  const gateway = raw.gateway === undefined ? first : ipField(`${field}.gateway`, raw.gateway, subnet);
  return { subnet, rangeStart, rangeEnd, gateway, field };
}

/** True when the inclusive ranges of two pools share an address. */
export function poolsOverlap(a: Pool, b: Pool): boolean {
  if (a.subnet.family !== b.subnet.family) return false;
  return a.rangeStart.value <= b.rangeEnd.value && b.rangeStart.value <= a.rangeEnd.value;
}

/** "10.0.0.0/24 10.0.0.1-10.0.0.254" for messages. */
export function describePool(p: Pool): string {
  return `${p.subnet.network}/${p.subnet.prefix} ${p.rangeStart}-${p.rangeEnd}`;
}

/** All pools of a set for messages. */
export function describeSet(set: RangeSet): string {
  return set.map(describePool).join(", ");
}

function parseRangeSets(raw: unknown, field: string): RangeSet[] {
  if (!Array.isArray(raw)) throw invalidConfig(field, raw, "must be a list of range sets (each a list of ranges)");
  return raw.map((set, i) => {
    const setField = `${field}[${i}]`;
    if (!Array.isArray(set)) throw invalidConfig(setField, set, "must be a list of ranges");
    if (set.length === 0) throw invalidConfig(setField, set, "empty range set");
    const pools = set.map((r, j) => parsePool(r, `${setField}[${j}]`));
    for (const [j, p] of pools.entries()) {
      if (p.subnet.family !== pools[0]!.subnet.family) {
        throw invalidConfig(`${p.field}.subnet`, cidrToString(p.subnet), `mixes IPv${p.subnet.family} into an IPv${pools[0]!.subnet.family} range set`);
      }
      for (const q of pools.slice(0, j)) {
        if (poolsOverlap(p, q)) throw invalidConfig(p.field, describePool(p), `overlaps ${q.field} (${describePool(q)})`);
      }
    }
    return pools;
  });
}

function parseRoutes(raw: unknown): Route[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalidConfig("ipam.routes", raw, "must be a list of {dst, gw?}");
  return raw.map((r, i) => {
    const field = `ipam.routes[${i}]`;
    if (!isObj(r)) throw invalidConfig(field, r, "must be an object {dst, gw?}");
    const dst = cidrField(`${field}.dst`, r.dst);
    const out: Route = { ...(r as unknown as Route), dst: cidrToString(dst) };
    if (r.gw !== undefined) {
      const gw = ipField(`${field}.gw`, r.gw);
      if (gw.family !== dst.family) throw invalidConfig(`${field}.gw`, r.gw, `not the family of dst ${out.dst}`);
      out.gw = gw.toString();
    }
    return out;
  });
}

/** Finds the range set and pool whose [rangeStart, rangeEnd] holds ip. */
export function findPool(sets: readonly RangeSet[], ip: IpAddress): { setIndex: number; pool: Pool } | undefined {
  for (const [setIndex, set] of sets.entries()) {
    for (const pool of set) {
      if (pool.subnet.family === ip.family && pool.rangeStart.value <= ip.value && ip.value <= pool.rangeEnd.value) {
        return { setIndex, pool };
      }
    }
  }
  return undefined;
}

function stripPrefix(s: string): string {
  const slash = s.indexOf("/");
  return slash < 0 ? s : s.slice(0, slash);
}

/** Collects requested IPs from CNI_ARGS IP=a,b, args.cni.ips and runtimeConfig.ips; each must fall in a set, one per set. */
function parseRequested(conf: NetConf, args: Record<string, string>, sets: RangeSet[]): RequestedIp[] {
  const raw: Array<{ field: string; value: unknown; env?: boolean }> = [];
  if (args.IP !== undefined && args.IP !== "") {
    for (const v of args.IP.split(",")) raw.push({ field: "CNI_ARGS IP", value: v.trim(), env: true });
  }
  const cni = isObj(conf.args) ? conf.args.cni : undefined;
  if (isObj(cni) && cni.ips !== undefined) {
    if (!Array.isArray(cni.ips)) throw invalidConfig("args.cni.ips", cni.ips, "must be a list of IP addresses");
    cni.ips.forEach((v, i) => raw.push({ field: `args.cni.ips[${i}]`, value: v }));
  }
  const rc = conf.runtimeConfig;
  if (isObj(rc) && rc.ips !== undefined) {
    if (!Array.isArray(rc.ips)) throw invalidConfig("runtimeConfig.ips", rc.ips, "must be a list of IP addresses");
    rc.ips.forEach((v, i) => raw.push({ field: `runtimeConfig.ips[${i}]`, value: v }));
  }
  const out: RequestedIp[] = [];
  for (const r of raw) {
    let ip: IpAddress;
    try {
      if (typeof r.value !== "string") throw new IpParseError("must be an IP address string");
      ip = parseIp(stripPrefix(r.value));
    } catch (e) {
      if (r.env) throw invalidEnv("CNI_ARGS", `IP=${args.IP}`, `${JSON.stringify(r.value)}: ${(e as Error).message}`, e);
      throw invalidConfig(r.field, r.value, (e as Error).message, e);
    }
    if (out.some((o) => o.ip.equals(ip))) continue;
    const hit = findPool(sets, ip);
    if (!hit) {
      const all = sets.map((s, i) => `${i}: ${describeSet(s)}`).join("; ");
      throw invalidConfig(r.field, r.value, `requested IP is in no range set (${all})`);
    }
    if (hit.pool.gateway.equals(ip)) throw invalidConfig(r.field, r.value, `requested IP is the gateway of ${hit.pool.field}`);
    const clash = out.find((o) => o.setIndex === hit.setIndex);
    if (clash) {
      throw invalidConfig(r.field, r.value, `range set ${hit.setIndex} already has requested IP ${clash.ip} (${clash.field}); at most one per range set`);
    }
    out.push({ ip, setIndex: hit.setIndex, field: r.field });
  }
  return out;
}

/** The data directory and network name only: enough for DEL and GC, which must work even when ranges changed. */
export function parseStoreConfig(conf: NetConf): { network: string; dataDir: string } {
  const ipam = conf.ipam;
  if (!isObj(ipam)) throw invalidConfig("ipam", ipam, "must be an object");
  const dataDir = ipam.dataDir ?? DEFAULT_DATA_DIR;
  if (typeof dataDir !== "string" || dataDir === "" || dataDir.includes("\0")) {
    throw invalidConfig("ipam.dataDir", ipam.dataDir, "must be a non-empty path");
  }
  if (typeof conf.name !== "string" || conf.name === "") throw invalidConfig("name", conf.name, "required");
  return { network: conf.name, dataDir };
}

/** Parses and validates the whole IPAM configuration of a request (throws CniError code 7, or 4 for CNI_ARGS). */
export function parseIpamConfig(conf: NetConf, args: Record<string, string> = {}): IpamConfig {
  const { network, dataDir } = parseStoreConfig(conf);
  const ipam = conf.ipam as Obj;
  const sets: RangeSet[] = [];
  const rc = conf.runtimeConfig;
  if (isObj(rc) && rc.ipRanges !== undefined) sets.push(...parseRangeSets(rc.ipRanges, "runtimeConfig.ipRanges"));
  if (ipam.subnet !== undefined) {
    sets.push([parsePool({ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }, "ipam")]);
  } else {
    for (const k of ["rangeStart", "rangeEnd", "gateway"] as const) {
      if (ipam[k] !== undefined) throw invalidConfig(`ipam.${k}`, ipam[k], "only valid together with ipam.subnet");
    }
  }
  if (ipam.ranges !== undefined) sets.push(...parseRangeSets(ipam.ranges, "ipam.ranges"));
  if (sets.length === 0) throw invalidConfig("ipam.ranges", undefined, "no IP ranges specified (set ipam.ranges or ipam.subnet)");
  for (const [i, a] of sets.entries()) {
    for (const b of sets.slice(0, i)) {
      for (const p of a) {
        const q = b.find((x) => poolsOverlap(x, p));
        if (q) throw invalidConfig(p.field, describePool(p), `overlaps ${q.field} (${describePool(q)}) of another range set`);
      }
    }
  }
  if (compareVersions(conf.cniVersion, "0.3.0") < 0) {
    for (const fam of [4, 6] as const) {
      if (sets.filter((s) => s[0]!.subnet.family === fam).length > 1) {
        throw invalidConfig("ipam.ranges", undefined, `cniVersion ${conf.cniVersion} allows only one IPv${fam} range set`);
      }
    }
  }
  const routes = parseRoutes(ipam.routes);
  if (ipam.resolvConf !== undefined && (typeof ipam.resolvConf !== "string" || ipam.resolvConf === "")) {
    throw invalidConfig("ipam.resolvConf", ipam.resolvConf, "must be a file path");
  }
  const out: IpamConfig = { network, dataDir, rangeSets: sets, routes, requested: parseRequested(conf, args, sets) };
  if (typeof ipam.resolvConf === "string") out.resolvConf = ipam.resolvConf;
  return out;
}

/** Reads resolv.conf text the way host-local does: nameserver, domain, search, options; comments skipped. */
export function parseResolvConf(text: string): DNS {
  const dns: DNS = {};
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const f = line.split(/\s+/);
    if (f.length < 2) continue;
    const [key, ...rest] = f as [string, ...string[]];
    if (key === "nameserver") (dns.nameservers ??= []).push(rest[0]!);
    else if (key === "domain") dns.domain = rest[0]!;
    else if (key === "search") (dns.search ??= []).push(...rest);
    else if (key === "options") (dns.options ??= []).push(...rest);
  }
  return dns;
}
