// The CNI call log: a step recorder the verbs feed, and one JSON line per call appended to the netconf's logFile.
import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, renameSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { parseCniArgs } from "../cni/args.ts";
import type { DispatchOutcome } from "../cni/skel.ts";
import { warn } from "../cni/stdio.ts";

/** Default log file (netconf `logFile`; `""` disables the log). */
export const DEFAULT_LOG_FILE = "/var/log/ovsplane/cni.log";
/** Size past which the log is renamed to `<file>.1` (one generation kept). */
export const LOG_MAX_BYTES = 10 * 1024 * 1024;
/** Lines stay below this, so concurrent O_APPEND writers never interleave within a line. */
export const LOG_MAX_LINE = 4000;

let mark = performance.now();
let current: string | undefined;
let steps: Record<string, number> = {};

/** The step recorder: start() at the beginning of a call, step(name) as each step begins, end() when done. */
export const calls = {
  /** Starts recording a new call (forgets the previous one's steps). */
  start(): void {
    mark = performance.now();
    current = undefined;
    steps = {};
  },
  /** Closes the running step (if any) and opens `name`; a repeated name adds up. */
  step(name: string): void {
    const now = performance.now();
    if (current !== undefined) steps[current] = (steps[current] ?? 0) + (now - mark);
    current = name;
    mark = now;
  },
  /** Closes the running step and returns every step's duration in ms (insertion order). */
  end(): Record<string, number> {
    if (current !== undefined) calls.step(current);
    current = undefined;
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(steps)) out[k] = round(v);
    return out;
  },
};

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** What the log needs of the dispatcher's outcome (a DispatchOutcome is one). */
export type CallOutcome = Omit<DispatchOutcome, "conf" | "result"> & { conf?: Record<string, unknown>; result?: { ips?: { address: string }[] } };

/** One line of the call log. */
export interface CallRecord {
  time: string;
  command: string;
  network?: string;
  containerID?: string;
  netns?: string;
  ifname?: string;
  /** `namespace/name` from CNI_ARGS K8S_POD_NAMESPACE / K8S_POD_NAME. */
  pod?: string;
  ok: boolean;
  ips?: string[];
  code?: number;
  msg?: string;
  ms: number;
  steps: Record<string, number>;
}

/** Where a netconf asks the log to go: its `logFile` string, `""` = nowhere; anything else = the default. */
export function logFileOf(conf: Record<string, unknown> | undefined): string | undefined {
  const v = conf?.logFile;
  if (v === "") return undefined;
  return typeof v === "string" && v.startsWith("/") ? v : DEFAULT_LOG_FILE;
}

/** CNI_ARGS as the dispatcher reads them; {} when malformed (the call itself then failed with code 4). */
function argsOf(raw: string | undefined): Record<string, string> {
  try {
    return parseCniArgs(raw ?? "");
  } catch {
    return {};
  }
}

/** The log record of a finished call (steps from the recorder). */
export function recordOf(o: CallOutcome, steps: Record<string, number>, now = new Date()): CallRecord {
  const env = o.env;
  const args = argsOf(env.CNI_ARGS);
  const r: CallRecord = { time: now.toISOString(), command: o.command, ok: !o.error, ms: round(o.durationMs), steps };
  if (typeof o.conf?.name === "string") r.network = o.conf.name;
  if (env.CNI_CONTAINERID) r.containerID = env.CNI_CONTAINERID;
  if (env.CNI_NETNS) r.netns = env.CNI_NETNS;
  if (env.CNI_IFNAME) r.ifname = env.CNI_IFNAME;
  if (args.K8S_POD_NAME) r.pod = `${args.K8S_POD_NAMESPACE ?? ""}/${args.K8S_POD_NAME}`;
  if (o.result?.ips) r.ips = o.result.ips.map((i) => i.address);
  if (o.error) {
    r.code = o.error.code;
    r.msg = o.error.details ? `${o.error.msg}: ${o.error.details}` : o.error.msg;
  }
  return r;
}

/** One JSON line under LOG_MAX_LINE bytes (the message, then the steps, are cut to fit). */
export function formatRecord(r: CallRecord): string {
  let line = JSON.stringify(r);
  if (Buffer.byteLength(line) < LOG_MAX_LINE) return line + "\n";
  const cut: CallRecord = { ...r, msg: (r.msg ?? "").slice(0, 1500) + "…" };
  for (const k of ["netns", "steps"] as const) {
    line = JSON.stringify(cut);
    if (Buffer.byteLength(line) < LOG_MAX_LINE) break;
    if (k === "steps") cut.steps = {};
    else cut.netns = cut.netns?.slice(0, 200);
  }
  line = JSON.stringify(cut);
  return (Buffer.byteLength(line) < LOG_MAX_LINE ? line : JSON.stringify({ time: r.time, command: r.command, ok: r.ok, code: r.code, ms: r.ms, steps: {} })) + "\n";
}

/**
 * Appends one line to file (creating its directory), first renaming the file to `<file>.1` when it is over
 * maxBytes. Rotation races between processes are tolerated: at worst a few lines land in `.1`.
 */
export function appendLine(file: string, line: string, maxBytes = LOG_MAX_BYTES): void {
  let fd: number;
  try {
    fd = openSync(file, "a", 0o640);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
    fd = openSync(file, "a", 0o640);
  }
  try {
    const st = fstatSync(fd);
    if (st.size + line.length > maxBytes && st.size > 0) {
      // Rename only if the path still names the file we opened (another process may have rotated it already).
      const now = statSync(file, { throwIfNoEntry: false });
      if (now && now.ino === st.ino) renameSync(file, `${file}.1`);
      closeSync(fd);
      fd = -1;
      appendFileSync(file, line, { mode: 0o640 });
      return;
    }
    writeSync(fd, line);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** The observer the ovsplane entry hands the dispatcher: logs the call; a failure to log goes to stderr only. */
export function logCall(o: CallOutcome): void {
  try {
    const file = logFileOf(o.conf);
    if (!file || !o.conf) return;
    appendLine(file, formatRecord(recordOf(o, calls.end())));
  } catch (e) {
    warn(`ovsplane: cannot write the call log: ${e instanceof Error ? e.message : String(e)}\n`);
  }
}
