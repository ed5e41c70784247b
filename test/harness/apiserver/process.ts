// Runs the fake API server as a child process (optionally inside a netns) and drives it through main.ts's stdin protocol.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import type { ResourceName } from "./resources.ts";
import type { KObject } from "./store.ts";

/** Options of spawnApiServer. */
export interface ApiServerProcessOptions {
  /** `IP:PORT` to listen on (e.g. "198.18.0.200:6443"). */
  listen: string;
  /** Directory for ca.crt, token, kubeconfig. */
  dir: string;
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  token?: string;
  historyLimit?: number;
  bookmarkIntervalMs?: number;
  /** How long to wait for the ready line (default 30 s: certificates and tsx start-up). */
  startTimeoutMs?: number;
}

/** What the process printed when ready. */
export interface ApiServerReady {
  url: string;
  kubeconfig: string;
  caFile: string;
  token: string;
  pid: number;
}

/** A fake API server process; the same test controls as ApiServer, asynchronous. */
export interface ApiServerProcess extends ApiServerReady {
  upsert(resource: ResourceName, obj: Record<string, unknown>): Promise<KObject>;
  remove(resource: ResourceName, name: string, namespace?: string): Promise<KObject>;
  get(resource: ResourceName, name: string, namespace?: string): Promise<KObject | null>;
  compact(): Promise<void>;
  /** An outage: the listener and every watch closed. */
  stop(): Promise<void>;
  /** Listens again on the same address. */
  start(): Promise<void>;
  /** Ends the process (stdin closed, then SIGKILL after 3 s) and waits for it. */
  close(): Promise<void>;
}

/** test/harness/apiserver (this file's directory), under tsx's CommonJS transform or ESM. */
const HERE = typeof __dirname === "string" ? __dirname : import.meta.dirname;

/** Starts main.ts (node with tsx's loader) and resolves once it has written its kubeconfig and listens. */
export async function spawnApiServer(o: ApiServerProcessOptions): Promise<ApiServerProcess> {
  const root = resolve(HERE, "../../..");
  // One process (node with tsx's loader), not the tsx CLI, which runs the program in a child that a kill would orphan.
  const argv = [process.execPath, "--import", pathToFileURL(join(root, "node_modules/tsx/dist/loader.mjs")).href, join(HERE, "main.ts"), "--listen", o.listen, "--dir", o.dir];
  if (o.token) argv.push("--token", o.token);
  if (o.historyLimit !== undefined) argv.push("--history", String(o.historyLimit));
  if (o.bookmarkIntervalMs !== undefined) argv.push("--bookmark-ms", String(o.bookmarkIntervalMs));
  const full = o.netns ? ["ip", "netns", "exec", o.netns, ...argv] : argv;
  const child: ChildProcessWithoutNullStreams = spawn(full[0]!, full.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let ready: ((v: ApiServerReady) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const readyP = new Promise<ApiServerReady>((res, rej) => {
    ready = res;
    timer = setTimeout(() => rej(new Error(`fake apiserver did not start: ${stderr.trim()}`)), o.startTimeoutMs ?? 30_000);
    void exited.then(() => rej(new Error(`fake apiserver exited: ${stderr.trim()}`)));
  });
  createInterface({ input: child.stdout }).on("line", (line) => {
    let msg: { ready?: boolean; id?: number; ok?: boolean; result?: unknown; error?: string };
    try { msg = JSON.parse(line); } catch { return; }
    if (msg.ready) return ready?.(msg as unknown as ApiServerReady);
    const p = msg.id !== undefined ? pending.get(msg.id) : undefined;
    if (!p) return;
    pending.delete(msg.id!);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(`fake apiserver: ${msg.error}`));
  });
  void exited.then(() => {
    for (const p of pending.values()) p.reject(new Error(`fake apiserver exited: ${stderr.trim()}`));
    pending.clear();
  });
  let nextId = 0;
  const call = <T>(op: string, rest: Record<string, unknown> = {}): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.stdin.write(JSON.stringify({ id, op, ...rest }) + "\n");
    });
  const close = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin.end();
    const kill = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(kill);
  };
  let info: ApiServerReady;
  try {
    info = await readyP;
    clearTimeout(timer);
  } catch (e) {
    clearTimeout(timer);
    child.kill("SIGKILL");
    await exited;
    throw e;
  }
  return {
    ...info,
    upsert: (resource, object) => call("upsert", { resource, object }),
    remove: (resource, name, namespace) => call("remove", { resource, name, namespace }),
    get: (resource, name, namespace) => call("get", { resource, name, namespace }),
    compact: () => call("compact"),
    stop: () => call("stop"),
    start: () => call("start"),
    close,
  };
}
