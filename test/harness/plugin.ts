// Invoking CNI plugins inside a simulated node: directly (env + stdin) or through the libcni driver.
import { mkdtempSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { SimNode } from "./node.ts";
import type { SimPod } from "./pod.ts";

/** What a plugin (or the driver) invocation left behind; `json` is stdout parsed, or undefined. */
export interface PluginResult {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

/** Options of runPlugin. */
export interface RunPluginOptions {
  /** Path of the plugin executable. */
  bin: string;
  /** The node whose netns the plugin runs in (OVS_RUNDIR points at its daemons). */
  node: SimNode;
  /** CNI_COMMAND. */
  command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION" | (string & {});
  /** CNI_CONTAINERID (default "ctr-test"). */
  containerID?: string;
  /** CNI_NETNS: a SimPod or a path; omitted = unset. */
  netns?: SimPod | string;
  /** CNI_IFNAME (default "eth0"). */
  ifname?: string;
  /** CNI_ARGS: a `K=V;K=V` string or an object. */
  args?: string | Record<string, string>;
  /** CNI_PATH entries (default: the directory of bin). */
  path?: string[];
  /** Network config sent on stdin (objects are JSON-encoded). */
  config: object | string;
  /** Extra environment; a value of undefined removes a variable (e.g. {CNI_IFNAME: undefined}). */
  env?: Record<string, string | undefined>;
  /** Kill after this many ms (default 30 s). */
  timeoutMs?: number;
}

function parseJson(s: string): any {
  try { return s.trim() ? JSON.parse(s) : undefined; } catch { return undefined; }
}

/** Runs a CNI plugin inside opts.node's netns with the CNI_* env and the config on stdin. Never throws on exit codes. */
export async function runPlugin(opts: RunPluginOptions): Promise<PluginResult> {
  const bin = resolve(opts.bin);
  const args = typeof opts.args === "object" ? Object.entries(opts.args).map(([k, v]) => `${k}=${v}`).join(";") : opts.args;
  const netns = typeof opts.netns === "object" ? opts.netns.netnsPath : opts.netns;
  const env: Record<string, string | undefined> = {
    CNI_COMMAND: opts.command,
    CNI_CONTAINERID: opts.containerID ?? "ctr-test",
    CNI_NETNS: netns,
    CNI_IFNAME: opts.ifname ?? "eth0",
    CNI_ARGS: args,
    CNI_PATH: (opts.path ?? [join(bin, "..")]).join(":"),
    ...opts.env,
  };
  const input = typeof opts.config === "string" ? opts.config : JSON.stringify(opts.config);
  const r = await opts.node.exec([bin], { input, env, allowFail: true, timeoutMs: opts.timeoutMs ?? 30_000 });
  return { ...r, json: parseJson(r.stdout) };
}

/** Options of runDriver (the libcni driver, dist/test/cnidriver). */
export interface RunDriverOptions {
  /** The node whose netns the driver (and so every plugin) runs in. */
  node: SimNode;
  /** add, check or del. */
  command: "add" | "check" | "del";
  /** The conflist: an object/string (written to a file in the node's run dir) or `{file}`. */
  conflist: object | string | { file: string };
  /** Container ID (default "ctr-test"). */
  containerID?: string;
  /** The pod (or a netns path). */
  netns: SimPod | string;
  /** Interface name (default "eth0"). */
  ifname?: string;
  /** CNI_PATH dirs of the plugins. */
  path: string[];
  /** Result cache dir (default `<node.runDir>/cni-cache`, so DEL/CHECK get the cached prevResult). */
  cacheDir?: string;
  /** CNI_ARGS for RuntimeConf.Args. */
  args?: string | Record<string, string>;
  /** CapabilityArgs (portMappings, ips, mac, bandwidth...). */
  capArgs?: object;
  /** Driver binary (default dist/test/cnidriver under the repo). */
  driver?: string;
  /** Extra environment. */
  env?: Record<string, string | undefined>;
  /** Kill after this many ms (default 60 s). */
  timeoutMs?: number;
}

/** The repo root (two levels above test/harness). */
export const REPO_ROOT = resolve(harnessDir(), "../..");

function harnessDir(): string {
  // ESM (import.meta) or tsx's CommonJS transform (__dirname): whichever this file was loaded as.
  if (import.meta.dirname) return import.meta.dirname;
  if (import.meta.url) return dirname(fileURLToPath(import.meta.url));
  return __dirname;
}
/** Where scripts/build-libcni-driver.sh puts the driver. */
export const DRIVER_BIN = join(REPO_ROOT, "dist/test/cnidriver");

/** Runs the libcni driver inside the node's netns, as containerd would run the plugins. ADD's json is the result. */
export async function runDriver(opts: RunDriverOptions): Promise<PluginResult> {
  let file: string;
  if (typeof opts.conflist === "object" && "file" in opts.conflist && typeof opts.conflist.file === "string") {
    file = opts.conflist.file;
  } else {
    file = join(mkdtempSync(join(opts.node.runDir, "conflist-")), "net.conflist");
    writeFileSync(file, typeof opts.conflist === "string" ? opts.conflist : JSON.stringify(opts.conflist, null, 2));
  }
  const args = typeof opts.args === "object" ? Object.entries(opts.args).map(([k, v]) => `${k}=${v}`).join(";") : opts.args;
  const netns = typeof opts.netns === "object" ? opts.netns.netnsPath : opts.netns;
  const env: Record<string, string | undefined> = {
    CNI_PATH: opts.path.join(":"),
    CNI_CACHE_DIR: opts.cacheDir ?? join(opts.node.runDir, "cni-cache"),
    CNI_ARGS: args,
    CAP_ARGS: opts.capArgs ? JSON.stringify(opts.capArgs) : undefined,
    ...opts.env,
  };
  const argv = [opts.driver ?? DRIVER_BIN, opts.command, file, opts.containerID ?? "ctr-test", netns, opts.ifname ?? "eth0"];
  const r = await opts.node.exec(argv, { env, allowFail: true, timeoutMs: opts.timeoutMs ?? 60_000 });
  return { ...r, json: parseJson(r.stdout) };
}
