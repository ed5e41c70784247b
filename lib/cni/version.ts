// Spec versions we speak, and conversion of results between the 0.x and 1.x shapes.
import type { Result, ResultIP, Route, DNS } from "./types.ts";
import { decodeFailure } from "./errors.ts";

/** Every spec version ovsplane accepts, oldest first. */
export const SUPPORTED_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;

/** The newest version we speak. */
export const CURRENT_VERSION = "1.1.0";

/** The VERSION answer, the same for every plugin of ovsplane (the multi-call entry prints it without loading one). */
export function versionAnswer(): string {
  return JSON.stringify({ cniVersion: CURRENT_VERSION, supportedVersions: SUPPORTED_VERSIONS }) + "\n";
}

/** Compares two dotted versions: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** True when version is one we speak. */
export function isSupported(version: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

function family(cidr: string): "4" | "6" {
  return cidr.includes(":") ? "6" : "4";
}

/** Writes a 1.x-shaped result in the given spec version. */
export function convertResult(result: Result, version: string): Record<string, unknown> {
  if (compareVersions(version, "1.0.0") >= 0) return { ...result, cniVersion: version };
  if (compareVersions(version, "0.3.0") >= 0) {
    const out: Record<string, unknown> = { cniVersion: version };
    if (result.interfaces) {
      out.interfaces = result.interfaces.map((i) => {
        const o: Record<string, unknown> = { name: i.name };
        if (i.mac !== undefined) o.mac = i.mac;
        if (i.sandbox !== undefined) o.sandbox = i.sandbox;
        return o;
      });
    }
    if (result.ips) out.ips = result.ips.map((ip) => ({ version: family(ip.address), ...ip }));
    if (result.routes) out.routes = result.routes.map((r) => routeOld(r));
    if (result.dns) out.dns = result.dns;
    return out;
  }
  const out: Record<string, unknown> = { cniVersion: version };
  for (const fam of ["4", "6"] as const) {
    const ip = (result.ips ?? []).find((i) => family(i.address) === fam);
    if (!ip) continue;
    const routes = (result.routes ?? []).filter((r) => family(r.dst) === fam).map((r) => routeOld(r));
    const entry: Record<string, unknown> = { ip: ip.address };
    if (ip.gateway) entry.gateway = ip.gateway;
    if (routes.length) entry.routes = routes;
    out[`ip${fam}`] = entry;
  }
  out.dns = result.dns ?? {};
  return out;
}

function routeOld(r: Route): Route {
  return r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst };
}

/** Reads a result of any spec version (e.g. a prevResult or a delegate's output) into the 1.x shape. */
export function parseResult(raw: unknown): Result {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw decodeFailure("result is not a JSON object");
  const r = raw as Record<string, unknown>;
  const version = typeof r.cniVersion === "string" ? r.cniVersion : "0.1.0";
  if ("ips" in r || "interfaces" in r || compareVersions(version, "0.3.0") >= 0) {
    const out: Result = { cniVersion: version };
    if (Array.isArray(r.interfaces)) out.interfaces = r.interfaces as Result["interfaces"];
    if (Array.isArray(r.ips)) {
      out.ips = (r.ips as Array<ResultIP & { version?: string }>).map(({ version: _v, ...ip }) => ip);
    }
    if (Array.isArray(r.routes)) out.routes = r.routes as Route[];
    if (r.dns && typeof r.dns === "object") out.dns = r.dns as DNS;
    return out;
  }
  const out: Result = { cniVersion: version, ips: [], routes: [] };
  for (const fam of ["ip4", "ip6"]) {
    const e = r[fam] as { ip?: string; gateway?: string; routes?: Route[] } | undefined;
    if (!e || typeof e.ip !== "string") continue;
    const ip: ResultIP = { address: e.ip };
    if (e.gateway) ip.gateway = e.gateway;
    out.ips!.push(ip);
    for (const rt of e.routes ?? []) out.routes!.push(rt);
  }
  if (r.dns && typeof r.dns === "object") out.dns = r.dns as DNS;
  return out;
}
