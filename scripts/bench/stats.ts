// make bench helpers: percentiles, the CPU time of reaped children, printing rows side by side with a ratio.
import { readFileSync } from "node:fs";

/** The p-th percentile (nearest rank) of xs. */
export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** The median of xs. */
export const median = (xs: readonly number[]): number => pct(xs, 50);

/** Clock ticks per second of /proc's times (USER_HZ, 100 on Linux). */
const TICK_MS = 10;

/**
 * CPU time (user + sys, ms) of this process's children that have been waited for, grandchildren they
 * waited for included (/proc/self/stat cutime + cstime, as getrusage(RUSAGE_CHILDREN)): read it around
 * a driver run to get the CPU of every process of the CNI call (driver, plugins, their subprocesses).
 */
export function childrenCpuMs(): number {
  return procCpuMs("self", true);
}

/** CPU time (user + sys, ms) of a running process by pid (its own, or its reaped children's). */
export function procCpuMs(pid: number | "self", children = false): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields after the command: state is [0]; utime, stime, cutime, cstime are fields 14..17 of the line.
  const [u, s] = children ? [f[13], f[14]] : [f[11], f[12]];
  return (Number(u) + Number(s)) * TICK_MS;
}

/** Prints table rows: name, ovsplane, reference, ratio. */
export class Table {
  constructor(
    private readonly say: (s?: string) => void,
    private readonly unit: string,
    private readonly heads: readonly [string, string] = ["ovsplane", "bridge+h-l"],
  ) {}

  /** The header line. */
  head(): void {
    this.say(`${this.unit.padEnd(40)} ${this.heads[0].padStart(11)} ${this.heads[1].padStart(11)} ${"ratio".padStart(7)}  target`);
  }

  /** One row; `target` is the ratio to stay at or below (met/missed is printed). */
  row(name: string, a: number, b: number, target?: number): void {
    const r = a / b;
    const t = target === undefined ? "" : `<= ${target.toFixed(1)} ${r <= target ? "met" : "MISSED"}`;
    this.say(`${name.padEnd(40)} ${a.toFixed(1).padStart(11)} ${b.toFixed(1).padStart(11)} ${r.toFixed(2).padStart(7)}  ${t}`);
  }
}
