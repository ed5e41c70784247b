// How ovsplanectl prints: aligned tables for people, JSON for scripts, colour only on a terminal.
import type { Writable } from "node:stream";

/** Where a command writes, and how. */
export interface Out {
  /** One line of text (a newline is added). */
  line(text?: string): void;
  /** Colour (ANSI) only when writing to a terminal and NO_COLOR is unset. */
  readonly color: boolean;
}

/** An Out over a stream (default stdout). */
export function outTo(stream: Writable & { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): Out {
  return { line: (t = "") => void stream.write(`${t}\n`), color: !!stream.isTTY && env.NO_COLOR === undefined };
}

/** Green, red or yellow text when colour is on. */
export function paint(out: Out, kind: "ok" | "bad" | "warn", text: string): string {
  if (!out.color) return text;
  const code = { ok: 32, bad: 31, warn: 33 }[kind];
  return `\x1b[${code}m${text}\x1b[0m`;
}

/** Rows as an aligned table with a header (every cell as text). */
export function table(out: Out, header: readonly string[], rows: readonly (readonly string[])[]): void {
  const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => strip(r[i] ?? "").length)));
  const fmt = (r: readonly string[]) => r.map((c, i) => (i === r.length - 1 ? c : c + " ".repeat(widths[i]! - strip(c).length))).join("  ").trimEnd();
  out.line(fmt(header));
  for (const r of rows) out.line(fmt(r));
}

/** JSON of a value (bigints as decimal strings), one document. */
export function json(out: Out, value: unknown): void {
  out.line(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v), 2));
}

/** A report on stdout: `value` as JSON with --json, else in words by `print`. */
export function report(asJson: boolean | undefined, value: unknown, print: (out: Out) => void): void {
  const out = outTo();
  if (asJson) json(out, value);
  else print(out);
}

/** "yes"/"no" (or given words) painted green or red. */
export function mark(out: Out, ok: boolean, yes = "yes", no = "no"): string {
  return paint(out, ok ? "ok" : "bad", ok ? yes : no);
}

/**
 * Runs an async command body: its number is the exit code; an error becomes one line on stderr and exit
 * code 1 (never a stack trace).
 */
export async function guardAsync(fn: () => Promise<number | void>): Promise<void> {
  try {
    const code = await fn();
    if (typeof code === "number") process.exitCode = code;
  } catch (err) {
    process.stderr.write(`ovsplanectl: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}

/** Key-value lines with the values aligned (no header), each prefixed by indent. */
export function pairs(out: Out, rows: readonly (readonly [string, string])[], indent = ""): void {
  const w = Math.max(0, ...rows.map(([k]) => k.length));
  for (const [k, v] of rows) out.line(`${indent}${k.padEnd(w)}  ${v}`.trimEnd());
}
