// The one helper for network namespaces and kernel links: iproute2 batches, inside a netns by path.
import { existsSync } from "node:fs";
import { run, type ExecResult } from "./exec.ts";

/** Options of ipBatch. */
export interface IpBatchOptions {
  /** Run inside the netns at this path (via nsenter) instead of here. */
  nsPath?: string;
  /** Go on past failing lines (ip -force) and do not throw. */
  force?: boolean;
  /** Commands run after the batch in the same netns and the same subprocess (a shell chain). */
  then?: readonly (readonly string[])[];
}

/** One argument quoted for sh. */
export function shQuote(a: string): string {
  return /^[A-Za-z0-9_.:\/=,+@%-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** Runs `ip -batch -` in the current netns, or inside the netns at nsPath (via nsenter). */
export function ipBatch(lines: readonly string[], opts: IpBatchOptions = {}): Promise<ExecResult> {
  const ip = ["ip", ...(opts.force ? ["-force"] : []), "-batch", "-"];
  let cmd: string[] = ip;
  if (opts.then?.length) {
    cmd = ["sh", "-c", [ip, ...opts.then].map((a) => a.map(shQuote).join(" ")).join(" && ")];
  }
  const argv = opts.nsPath ? ["nsenter", `--net=${opts.nsPath}`, ...cmd] : cmd;
  return run(argv, { input: lines.join("\n") + "\n", allowFail: opts.force ?? false });
}

/** Runs a command inside the netns at nsPath. */
export function inNetns(nsPath: string, argv: readonly string[], opts: { allowFail?: boolean } = {}): Promise<ExecResult> {
  return run(["nsenter", `--net=${nsPath}`, ...argv], opts);
}

/** `ip -j ...` inside a netns (or here), parsed. */
export async function ipJson<T = unknown>(args: readonly string[], nsPath?: string): Promise<T> {
  const argv = ["ip", "-j", ...args];
  const r = nsPath ? await inNetns(nsPath, argv) : await run(argv);
  return (r.stdout.trim() ? JSON.parse(r.stdout) : []) as T;
}

/** True when a netns path exists and can be entered. */
export function netnsExists(nsPath: string): boolean {
  return nsPath !== "" && existsSync(nsPath);
}

/** This process's own netns as a path iproute2 accepts for `netns` (a path, not a name). */
export function ownNetnsPath(): string {
  return `/proc/${process.pid}/ns/net`;
}

/** True when an interface exists in this process's netns (sysfs, no subprocess). */
export function linkExistsHere(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}
