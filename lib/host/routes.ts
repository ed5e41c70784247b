// The main IPv4 routing table of this process's netns, read from /proc/net/route (no subprocess).
import { readFileSync } from "node:fs";

/** One route: its interface, destination `A.B.C.D/len` and metric. */
export interface ProcRoute {
  dev: string;
  dst: string;
  metric: number;
}

/** A little-endian hex address of /proc/net/route as dotted quad. */
function quad(hex: string): string {
  return [0, 1, 2, 3].map((i) => parseInt(hex.slice(6 - 2 * i, 8 - 2 * i), 16)).join(".");
}

/** Parses /proc/net/route's text (pure; lines that are not routes are skipped). */
export function parseProcRoutes(text: string): ProcRoute[] {
  return text.split("\n").slice(1).flatMap((line) => {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) return [];
    const len = parseInt(f[7]!, 16).toString(2).replace(/0/g, "").length;
    return [{ dev: f[0]!, dst: `${quad(f[1]!)}/${len}`, metric: Number(f[6]) }];
  });
}

/** The routes of this netns's main table (none when /proc/net/route cannot be read). */
export function procRoutes(): ProcRoute[] {
  try {
    return parseProcRoutes(readFileSync("/proc/net/route", "utf8"));
  } catch {
    return [];
  }
}

/** `A.B.C.D` as /proc/net/route prints it: 8 hex digits, little-endian, upper case. */
function procHex(quadText: string): string {
  return quadText.split(".").reverse().map((o) => Number(o).toString(16).padStart(2, "0")).join("").toUpperCase();
}

/**
 * True when /proc/net/route's text holds each route (dev, metric, `A.B.C.D/len` destinations); only
 * the lines of the device whose destination is one of them are parsed, so a table of 1,000 peer routes
 * costs a scan, not a parse (pure).
 */
export function holdsRoutes(text: string, dev: string, metric: number, dsts: readonly string[]): boolean {
  const want = new Map(dsts.map((d) => {
    const [ip, len] = d.split("/");
    const bits = Number(len ?? 32);
    const mask = bits === 0 ? "0.0.0.0" : [24, 16, 8, 0].map((s) => String(((0xffffffff << (32 - bits)) >>> s) & 0xff)).join(".");
    return [procHex(ip!), procHex(mask)] as const;
  }));
  const found = new Set<string>();
  const head = `${dev}\t`;
  for (const line of text.split("\n")) {
    if (!line.startsWith(head)) continue;
    const dst = line.slice(head.length, head.length + 8);
    const mask = want.get(dst);
    if (mask === undefined) continue;
    const f = line.split("\t");
    if (Number(f[6]) === metric && f[7]?.toUpperCase() === mask) found.add(dst);
  }
  return found.size === want.size;
}

/** holdsRoutes over this netns's /proc/net/route (false when it cannot be read). */
export function procHoldsRoutes(dev: string, metric: number, dsts: readonly string[]): boolean {
  try {
    return holdsRoutes(readFileSync("/proc/net/route", "utf8"), dev, metric, dsts);
  } catch {
    return false;
  }
}
