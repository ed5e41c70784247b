// Network-namespace plumbing of the test harness: run-unique names, create/delete, and the leftover sweep.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { run, type ExecOptions, type ExecResult } from "../../lib/host/exec.ts";

/** Every namespace, directory and link the harness creates starts with this. */
export const TEST_PREFIX = "ovsp-t";
/** Where each run records its owner pid, so a sweep never touches a live parallel run. */
export const RUNS_DIR = "/run/ovsp-test";
/** Parent directory of the per-node and per-run scratch directories. */
export const TMP_ROOT = "/tmp";

/** This process's run id (6 hex chars), part of every name the harness makes. */
export const RUN_ID = randomBytes(6).toString("hex").slice(0, 6);
/** `ovsp-t<runid>`: the prefix of this run's namespaces and scratch dirs. */
export const RUN_PREFIX = `${TEST_PREFIX}${RUN_ID}`;

let registered = false;
const usedNames = new Set<string>();

/** Records this run as alive (owner pid) in RUNS_DIR; idempotent. */
export function registerRun(): void {
  if (registered) return;
  mkdirSync(RUNS_DIR, { recursive: true });
  writeFileSync(join(RUNS_DIR, RUN_ID), `${process.pid}\n`);
  registered = true;
  process.once("exit", unregisterRun);
}

/** Removes this run's owner record (after teardown). */
export function unregisterRun(): void {
  rmSync(join(RUNS_DIR, RUN_ID), { force: true });
  registered = false;
}

/** A namespace name unique in this run: `ovsp-t<runid>-<name>` (with `-2`, `-3`... if reused). */
export function uniqueNsName(name: string, prefix = `${RUN_PREFIX}-`): string {
  const base = `${prefix}${name.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
  let n = base;
  for (let i = 2; usedNames.has(n); i++) n = `${base}-${i}`;
  usedNames.add(n);
  return n;
}

/** `/var/run/netns/<ns>`: the path a CNI runtime would pass as CNI_NETNS. */
export function netnsPath(ns: string): string {
  return `/var/run/netns/${ns}`;
}

/** Runs argv inside namespace ns (`ip netns exec`). */
export function nsExec(ns: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return run(["ip", "netns", "exec", ns, ...argv], opts);
}

/** Creates namespace ns with `lo` up. */
export async function addNetns(ns: string): Promise<void> {
  registerRun();
  await run(["ip", "netns", "add", ns]);
  await run(["ip", "-n", ns, "link", "set", "lo", "up"]);
}

/** Names of all namespaces (`ip netns list`). */
export async function listNetns(): Promise<string[]> {
  const r = await run(["ip", "netns", "list"], { allowFail: true });
  return r.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "").filter(Boolean);
}

/** True while pid names a live (non-zombie) process. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) [ZX]/s.test(stat);
  } catch {
    return false;
  }
}

/** SIGTERM pid, wait up to graceMs for it to go, then SIGKILL (and wait a little more). */
export async function killPid(pid: number, graceMs = 3000): Promise<void> {
  if (!pidAlive(pid)) return;
  try { process.kill(pid, "SIGTERM"); } catch { return; }
  const until = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < until) await sleep(50);
  if (!pidAlive(pid)) return;
  try { process.kill(pid, "SIGKILL"); } catch { return; }
  for (let i = 0; i < 40 && pidAlive(pid); i++) await sleep(50);
}

/** Kills every process inside ns (`ip netns pids`), then deletes ns. Tolerates a missing ns. */
export async function delNetns(ns: string): Promise<void> {
  if (!existsSync(netnsPath(ns))) return;
  const pids = await run(["ip", "netns", "pids", ns], { allowFail: true });
  await Promise.all(pids.stdout.split(/\s+/).filter(Boolean).map((p) => killPid(Number(p), 1500)));
  await run(["ip", "netns", "del", ns], { allowFail: true });
}

/** Kills the daemons named by the `*.pid` files of dir (only if their cmdline mentions dir). */
export async function killDirDaemons(dir: string): Promise<void> {
  let files: string[] = [];
  try { files = readdirSync(dir).filter((f) => f.endsWith(".pid")); } catch { return; }
  for (const f of files) {
    let pid = NaN;
    try { pid = Number(readFileSync(join(dir, f), "utf8").trim()); } catch { continue; }
    let cmdline = "";
    try { cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8"); } catch { continue; }
    if (cmdline.includes(dir)) await killPid(pid);
  }
}

/** Sleeps ms milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function runIdOf(name: string): string | undefined {
  if (!name.startsWith(TEST_PREFIX)) return undefined;
  return name.slice(TEST_PREFIX.length).split("-")[0] || undefined;
}

function runAlive(id: string): boolean {
  try {
    return pidAlive(Number(readFileSync(join(RUNS_DIR, id), "utf8").trim()));
  } catch {
    return false;
  }
}

/**
 * Removes what crashed earlier runs left behind: `ovsp-t*` namespaces (and every process in them),
 * their daemons and scratch dirs in /tmp. Runs whose owner process is still alive (parallel runs)
 * and this run are left alone unless `force`. Returns the names of the namespaces removed.
 */
export async function sweepLeftovers(opts: { force?: boolean } = {}): Promise<string[]> {
  const dead = (id: string | undefined): id is string =>
    id !== undefined && (opts.force === true || (id !== RUN_ID && !runAlive(id)));
  const removed: string[] = [];
  for (const ns of await listNetns()) {
    if (!dead(runIdOf(ns))) continue;
    await delNetns(ns);
    removed.push(ns);
  }
  let tmp: string[] = [];
  try { tmp = readdirSync(TMP_ROOT).filter((f) => f.startsWith(TEST_PREFIX)); } catch { /* none */ }
  for (const d of tmp) {
    if (!dead(runIdOf(d))) continue;
    await killDirDaemons(join(TMP_ROOT, d));
    rmSync(join(TMP_ROOT, d), { recursive: true, force: true });
  }
  let runs: string[] = [];
  try { runs = readdirSync(RUNS_DIR); } catch { /* none */ }
  for (const id of runs) if (dead(id)) rmSync(join(RUNS_DIR, id), { force: true });
  return removed;
}
