// The one door to subprocesses: every spawn goes through run(), whose error keeps argv and stderr.
import { spawn } from "node:child_process";
import { settings } from "../settings.ts";
import { warn } from "../cni/stdio.ts";

/** With settings.trace (OVSPLANE_TRACE), logs a step with the milliseconds since the process started. */
export function trace(step: string): void {
  if (settings.trace) warn(`ovsplane trace: at ${performance.now().toFixed(1)} ms: ${step}\n`);
}

/** The start of the OVSPLANE_TRACE line run() writes for every subprocess it starts. */
export const SPAWN_TRACE = "ovsplane trace: spawn: ";

/** What a finished subprocess left behind. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Options of run(). */
export interface ExecOptions {
  /** Text written to the child's stdin (then closed). */
  input?: string;
  /** Kill the child after this many milliseconds (default 10 s). */
  timeoutMs?: number;
  /** Extra environment (merged over process.env). */
  env?: Record<string, string | undefined>;
  /** Resolve instead of throwing on a non-zero exit. */
  allowFail?: boolean;
}

/** A subprocess that failed: keeps its argv, exit code and stderr for the error message. */
export class ExecError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly code: number,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(`${argv.join(" ")}: exit ${code}${stderr.trim() ? `: ${stderr.trim().split("\n").slice(-3).join("; ")}` : ""}`);
    this.name = "ExecError";
  }
}

/** Runs argv (no shell), returns its output; throws ExecError on failure unless allowFail. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (!cmd) return reject(new ExecError(argv, -1, "empty command", ""));
    // Every subprocess is announced before it starts: the tests count these lines (no spawn on the CNI paths).
    if (settings.trace) warn(`${SPAWN_TRACE}${argv.join(" ")}\n`);
    const child = spawn(cmd, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? 10_000);
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new ExecError(argv, -1, e.message, ""));
    });
    const tracing = settings.trace;
    const started = tracing ? performance.now() : 0;
    child.on("close", (code) => {
      clearTimeout(timer);
      if (tracing) warn(`ovsplane trace: ${(performance.now() - started).toFixed(1)} ms ${argv.join(" ")}\n`);
      const rc = code ?? -1;
      if (timedOut) stderr += `\ntimed out after ${opts.timeoutMs ?? 10_000} ms`;
      if ((rc !== 0 || timedOut) && !opts.allowFail) reject(new ExecError(argv, rc, stderr, stdout));
      else resolve({ stdout, stderr, code: rc });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}
