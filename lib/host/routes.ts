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
