// podman (4.3, CNI backend, runc) as a real runtime client on a simulated node, with fully private state.
//
// podman runs under `nsenter --net=<node netns>`, not `ip netns exec` (SimNode.exec): `ip netns exec` also
// unshares the mount namespace and remounts /sys without the cgroup hierarchy, and runc then fails with
// "runc create failed: no cgroup mount found in mountinfo"; the bind mounts podman makes for its container
// netns (/run/netns/netns-<uuid>) would also vanish with that short-lived mount namespace.
// Private: storage (vfs), its runroot, tmp_dir, file locks, events log, runc's state (a `runc` wrapper adding
// --root, named in containers.conf: the `podman container cleanup` that conmon starts when a container or exec
// session exits gets the config through the environment but not podman's --runtime-flag) and a per-instance
// cgroup parent. podman 4.3 still creates /var/lib/cni (libcni's result cache) and
// /var/lib/containers/cache (blob-info cache, on import): destroy() removes them when it created them.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, symlinkSync, copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run, type ExecResult } from "../../lib/host/exec.ts";
import type { SimNode } from "./node.ts";
import { killPid, listNetns, pidAlive, RUN_PREFIX, sleep, TMP_ROOT } from "./netns.ts";

/** Debian's busybox-static. */
export const BUSYBOX = "/bin/busybox";
/** Debian's runc. */
export const RUNC = "/usr/bin/runc";
const CGROUP_ROOT = "/sys/fs/cgroup";
const HOST_DIRS = ["/var/lib/cni", "/var/lib/containers"];

/** Options of PodmanEnv.create. */
export interface PodmanOptions {
  /** The CNI network configs to install, by network name (each becomes `<name>.conflist`). */
  conflists: Record<string, object>;
  /** CNI plugin directories (cni_plugin_dirs). */
  pluginDirs: string[];
}

/** A private podman installation whose CNI calls run inside one simulated node's netns. */
export class PodmanEnv {
  private readonly hostDirsBefore: Set<string>;
  /** Names of the container netns podman made for runDetached (/run/netns/netns-<uuid>). */
  private readonly containerNetns = new Set<string>();
  /** cgroup parent of this instance's containers and conmons (removed by destroy). */
  readonly cgroupParent: string;

  private constructor(readonly node: SimNode, readonly dir: string) {
    this.hostDirsBefore = new Set(HOST_DIRS.filter((d) => existsSync(d)));
    this.cgroupParent = `/${dir.split("/").pop()}`;
  }

  /** Writes containers.conf, storage.conf and the conflists into a fresh `/tmp/ovsp-t<run>-podman-*` dir. */
  static async create(node: SimNode, o: PodmanOptions): Promise<PodmanEnv> {
    const dir = mkdtempSync(join(TMP_ROOT, `${RUN_PREFIX}-podman-`));
    const env = new PodmanEnv(node, dir);
    for (const d of ["net", "storage", "runroot", "tmp", "runc", "image", "bin"]) mkdirSync(join(dir, d));
    const q = (s: string) => JSON.stringify(s);
    writeFileSync(join(dir, "bin/runc"), `#!/bin/sh\nexec ${RUNC} --root ${join(dir, "runc")} "$@"\n`, { mode: 0o755 });
    writeFileSync(join(dir, "containers.conf"), [
      "[containers]",
      'default_ulimits = ["nproc=1024:1024", "nofile=1024:1024"]',
      "pids_limit = 0",
      "[network]",
      'network_backend = "cni"',
      `cni_plugin_dirs = [${o.pluginDirs.map(q).join(", ")}]`,
      `network_config_dir = ${q(join(dir, "net"))}`,
      "[engine]",
      'runtime = "runc"', // crun fails on cgroups here
      'cgroup_manager = "cgroupfs"',
      'lock_type = "file"',
      'events_logger = "file"',
      `events_logfile_path = ${q(join(dir, "tmp/events.log"))}`,
      `tmp_dir = ${q(join(dir, "tmp"))}`,
      `image_copy_tmp_dir = ${q(join(dir, "tmp"))}`,
      "[engine.runtimes]",
      `runc = [${q(join(dir, "bin/runc"))}]`,
      "",
    ].join("\n"));
    writeFileSync(join(dir, "storage.conf"), [
      "[storage]", 'driver = "vfs"', `graphroot = ${q(join(dir, "storage"))}`, `runroot = ${q(join(dir, "runroot"))}`, "",
    ].join("\n"));
    for (const [name, conf] of Object.entries(o.conflists)) writeFileSync(join(dir, "net", `${name}.conflist`), JSON.stringify(conf, null, 2));
    return env;
  }

  /** `podman <args>` in the node's netns with this instance's config; throws on failure unless allowFail. */
  podman(args: readonly string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    return run(["nsenter", `--net=${this.node.netnsPath}`, "podman", ...args], {
      allowFail: opts.allowFail, timeoutMs: opts.timeoutMs ?? 60_000,
      env: { ...this.node.env, CONTAINERS_CONF: join(this.dir, "containers.conf"), CONTAINERS_STORAGE_CONF: join(this.dir, "storage.conf") },
    });
  }

  /** Builds an image offline from busybox-static (bin/busybox + applet links) and imports it as tag. */
  async importBusybox(tag = "localhost/ovsp-busybox:latest"): Promise<string> {
    const root = join(this.dir, "image/rootfs");
    mkdirSync(join(root, "bin"), { recursive: true });
    copyFileSync(BUSYBOX, join(root, "bin/busybox"));
    const applets = (await run([BUSYBOX, "--list"])).stdout.split("\n").map((s) => s.trim()).filter((a) => a && a !== "busybox");
    for (const a of applets) symlinkSync("busybox", join(root, "bin", a));
    const tar = join(this.dir, "image/rootfs.tar");
    await run(["tar", "-C", root, "-cf", tar, "."]);
    await this.podman(["import", tar, tag]);
    return tag;
  }

  /** `podman run -d --name name --network network image argv`; returns the container id. */
  async runDetached(name: string, network: string, image: string, argv: string[]): Promise<string> {
    const r = await this.podman(["run", "-d", "--name", name, "--network", network, "--cgroup-parent", this.cgroupParent, image, ...argv]);
    const key = await this.podman(["inspect", "--format", "{{.NetworkSettings.SandboxKey}}", name], { allowFail: true });
    const ns = key.stdout.trim().match(/^\/(?:var\/)?run\/netns\/([^/]+)$/)?.[1];
    if (ns) this.containerNetns.add(ns);
    return r.stdout.trim();
  }

  /** IPv4 addresses (CIDR) of ifname inside a running container, read with the image's `ip`. */
  async addresses(name: string, ifname = "eth0"): Promise<string[]> {
    const r = await this.podman(["exec", name, "ip", "-4", "-o", "addr", "show", "dev", ifname], { allowFail: true });
    return [...r.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+\/\d+)/g)].map((m) => m[1]!);
  }

  /** Pings ip from inside container name (`ping -c 1 -W 2`), up to tries times; true on the first success. */
  async ping(name: string, ip: string, tries = 5): Promise<boolean> {
    for (let i = 0; i < tries; i++) {
      if ((await this.podman(["exec", name, "ping", "-c", "1", "-W", "2", ip], { allowFail: true })).code === 0) return true;
    }
    return false;
  }

  /** `podman rm -f -t 0` (busybox sleep as PID 1 ignores SIGTERM: without -t 0 each rm waits 10 s). */
  rmForce(...names: string[]): Promise<ExecResult> {
    return this.podman(["rm", "-f", "-t", "0", ...names]);
  }

  /** Processes of this instance (conmon, the cleanup podman it starts, runc): their command line names its dir. */
  processes(): number[] {
    const pids: number[] = [];
    for (const p of readdirSync("/proc")) {
      if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
      try { if (readFileSync(`/proc/${p}/cmdline`, "utf8").includes(this.dir) && pidAlive(Number(p))) pids.push(Number(p)); } catch { /* gone */ }
    }
    return pids;
  }

  /** Waits up to timeoutMs for this instance's processes to exit, then kills what is left. */
  async settle(timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.processes().length && Date.now() < until) await sleep(100);
    await Promise.all(this.processes().map((p) => killPid(p, 1000)));
  }

  /** The netns podman made for runDetached's containers that still exist (`ip netns list`). */
  async liveNetns(): Promise<string[]> {
    const all = new Set(await listNetns());
    return [...this.containerNetns].filter((n) => all.has(n));
  }

  /**
   * Removes every container (CNI DEL included, so call it while the node's OVS still runs), the images,
   * the container netns, this instance's cgroups, the private dir and the host dirs podman created. Never throws.
   */
  async destroy(): Promise<void> {
    await this.podman(["rm", "-af", "-t", "0"], { allowFail: true }).catch(() => undefined);
    await this.podman(["rmi", "-af"], { allowFail: true }).catch(() => undefined);
    await this.settle();
    for (const ns of await this.liveNetns().catch(() => [])) {
      await run(["ip", "netns", "del", ns], { allowFail: true }).catch(() => undefined);
    }
    removeCgroup(this.cgroupParent);
    for (const m of mountsUnder(this.dir)) await run(["umount", "-l", m], { allowFail: true }).catch(() => undefined); // a crashed container's shm
    rmSync(this.dir, { recursive: true, force: true });
    for (const d of HOST_DIRS) if (!this.hostDirsBefore.has(d)) rmSync(d, { recursive: true, force: true });
  }
}

/** Mount points below dir, deepest first. */
function mountsUnder(dir: string): string[] {
  let mounts = "";
  try { mounts = readFileSync("/proc/self/mounts", "utf8"); } catch { return []; }
  return mounts.split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}

/** Removes cgroup `name` (and its children) from every hierarchy (v1 controllers, or v2). */
function removeCgroup(name: string): void {
  const roots = [CGROUP_ROOT];
  try { for (const c of readdirSync(CGROUP_ROOT)) roots.push(join(CGROUP_ROOT, c)); } catch { /* no cgroupfs */ }
  const rmTree = (d: string): void => {
    let isDir = false;
    try { isDir = statSync(d).isDirectory(); } catch { return; }
    if (!isDir) return;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rmTree(join(d, e.name));
    try { rmdirSync(d); } catch { /* busy or gone */ }
  };
  for (const r of roots) rmTree(join(r, name));
}
