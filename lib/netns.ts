// The one helper for network namespaces and kernel links: iproute2 batches, inside a netns by path.
import { existsSync } from "node:fs";
import { run, type ExecResult } from "./exec.ts";

/** Runs `ip -batch -` in the current netns, or inside the netns at nsPath (via nsenter). */
export function ipBatch(lines: readonly string[], opts: { nsPath?: string; force?: boolean } = {}): Promise<ExecResult> {
  const ip = ["ip", ...(opts.force ? ["-force"] : []), "-batch", "-"];
  const argv = opts.nsPath ? ["nsenter", `--net=${opts.nsPath}`, ...ip] : ip;
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
