// A simulated Kubernetes node: one netns running its own ovsdb-server and ovs-vswitchd (userspace datapath).
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { run, type ExecOptions, type ExecResult } from "../../lib/host/exec.ts";
import { addNetns, delNetns, killPid, netnsPath, nsExec, pidAlive, sleep, TMP_ROOT } from "./netns.ts";

const SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema";

/** How to create a SimNode. */
export interface NodeOptions {
  /** Short node name (e.g. "a"); becomes part of the netns name. */
  name: string;
  /** The node's underlay address, 198.18.0.x (a /24 on br-phy once connected). */
  underlayIP: string;
  /** Optional pod CIDR of the node (e.g. "10.244.1.0/24"), kept for the tests' convenience. */
  podCIDR?: string;
}

/** One simulated node. Create it with Testbed.createNode (which also records it for teardown). */
export class SimNode {
  /** Name of the node's underlay bridge, holding the underlay address on its internal port. */
  readonly underlayBridge = "br-phy";
  /** Set once the node has been joined to the underlay (connectNodes). */
  underlayConnected = false;

  /**
   * @param name short node name
   * @param netns the node's namespace name
   * @param runDir private OVS_RUNDIR (sockets, pidfiles, logs, conf.db)
   * @param underlayIP the node's underlay address (no prefix length)
   * @param podCIDR optional pod CIDR given at creation
   */
  constructor(
    readonly name: string,
    readonly netns: string,
    readonly runDir: string,
    readonly underlayIP: string,
    readonly podCIDR?: string,
  ) {}

  /** `/var/run/netns/<netns>`. */
  get netnsPath(): string { return netnsPath(this.netns); }
  /** `unix:<runDir>/db.sock`, the OVSDB remote. */
  get ovsdbSocket(): string { return `unix:${this.runDir}/db.sock`; }
  /** Environment that points OVS tools at this node's daemons (OVS_RUNDIR and friends). */
  get env(): Record<string, string> {
    return { OVS_RUNDIR: this.runDir, OVS_LOGDIR: this.runDir, OVS_DBDIR: this.runDir };
  }
  /** `unix:<runDir>/<bridge>.mgmt`, the OpenFlow management socket of bridge. */
  ofSocket(bridge: string): string { return `unix:${this.runDir}/${bridge}.mgmt`; }

  /** Runs argv inside the node's netns with OVS_RUNDIR set; throws on non-zero exit unless allowFail. */
  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return nsExec(this.netns, argv, { ...opts, env: { ...this.env, ...opts.env } });
  }

  /** `ovs-vsctl --db=<ovsdbSocket> --timeout=15 ...args`; returns trimmed stdout. */
  async vsctl(...args: string[]): Promise<string> {
    const r = await run(["ovs-vsctl", `--db=${this.ovsdbSocket}`, "--timeout=15", ...args], { env: this.env, timeoutMs: 20_000 });
    return r.stdout.trim();
  }

  /** `ovs-ofctl -O OpenFlow13 ...args` (a bare bridge name works as target: OVS_RUNDIR is set). */
  async ofctl(...args: string[]): Promise<string> {
    const r = await run(["ovs-ofctl", "-O", "OpenFlow13", ...args], { env: this.env, timeoutMs: 20_000 });
    return r.stdout;
  }

  /** `ovs-appctl -t <runDir>/<vswitchd|ovsdb>.ctl ...args` (e.g. appctl("vswitchd", "ovs/route/show")). */
  async appctl(target: "vswitchd" | "ovsdb", ...args: string[]): Promise<string> {
    const r = await run(["ovs-appctl", "-t", join(this.runDir, `${target}.ctl`), ...args], { env: this.env });
    return r.stdout;
  }

  /** Flows of bridge (optionally one table), without the stats columns, one per array item. */
  async dumpFlows(bridge: string, table?: number): Promise<string[]> {
    const out = await this.ofctl("--no-stats", "dump-flows", bridge, ...(table === undefined ? [] : [`table=${table}`]));
    return out.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("OFPST_FLOW"));
  }

  private pidOf(daemon: "ovsdb" | "vswitchd"): number {
    try { return Number(readFileSync(join(this.runDir, `${daemon}.pid`), "utf8").trim()); } catch { return NaN; }
  }

  /** True while the daemon's pidfile names a live process. */
  running(daemon: "ovsdb" | "vswitchd"): boolean { return pidAlive(this.pidOf(daemon)); }

  /** Starts ovsdb-server inside the netns (creating conf.db the first time). */
  async startOvsdb(): Promise<void> {
    const d = this.runDir;
    if (!existsSync(join(d, "conf.db"))) await run(["ovsdb-tool", "create", join(d, "conf.db"), SCHEMA]);
    await this.exec(["ovsdb-server", join(d, "conf.db"), `--remote=punix:${d}/db.sock`, `--unixctl=${d}/ovsdb.ctl`,
      `--pidfile=${d}/ovsdb.pid`, "--detach", "--no-chdir", `--log-file=${d}/ovsdb.log`], { timeoutMs: 20_000 });
    await this.waitFor(() => existsSync(join(d, "db.sock")), "ovsdb-server socket");
  }

  /** Stops ovsdb-server (SIGTERM, then SIGKILL). */
  async stopOvsdb(): Promise<void> {
    await killPid(this.pidOf("ovsdb"));
    rmSync(join(this.runDir, "ovsdb.pid"), { force: true });
  }

  /**
   * Starts ovs-vswitchd inside the netns and waits until it has applied the database. If the node is on
   * the underlay, re-asserts br-phy's address and link state (idempotent; the tap device survives a
   * SIGTERM stop here, but not necessarily a crash). OpenFlow flows are NOT restored: that is the agent's job.
   */
  async startVswitchd(): Promise<void> {
    const d = this.runDir;
    await this.exec(["ovs-vswitchd", this.ovsdbSocket, `--unixctl=${d}/vswitchd.ctl`, `--pidfile=${d}/vswitchd.pid`,
      "--detach", "--no-chdir", `--log-file=${d}/vswitchd.log`], { timeoutMs: 30_000 });
    await this.vsctl("init"); // without --no-wait: returns once ovs-vswitchd has applied the db
    if (this.underlayConnected) await this.configureUnderlayAddress();
  }

  /** Stops ovs-vswitchd (SIGTERM, then SIGKILL). */
  async stopVswitchd(): Promise<void> {
    await killPid(this.pidOf("vswitchd"));
    rmSync(join(this.runDir, "vswitchd.pid"), { force: true });
  }

  /** Puts the underlay address (/24) on br-phy and brings it up; idempotent. */
  async configureUnderlayAddress(): Promise<void> {
    await this.waitFor(async () => (await this.exec(["ip", "link", "show", this.underlayBridge], { allowFail: true })).code === 0,
      `${this.underlayBridge} device`);
    await this.exec(["ip", "addr", "replace", `${this.underlayIP}/24`, "dev", this.underlayBridge]);
    await this.exec(["ip", "link", "set", this.underlayBridge, "up"]);
  }

  /** Polls cond every 50 ms until true, or throws after timeoutMs. */
  async waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > until) throw new Error(`node ${this.name}: timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  /** Stops both daemons, deletes the netns (and every process in it) and the run dir. Never throws. */
  async destroy(): Promise<void> {
    await this.stopVswitchd().catch(() => undefined);
    await this.stopOvsdb().catch(() => undefined);
    await delNetns(this.netns).catch(() => undefined);
    rmSync(this.runDir, { recursive: true, force: true });
  }
}

/** A SimNode object with its private run dir (nothing started yet: see bootNode). */
export function newNode(netns: string, opts: NodeOptions, runPrefix: string): SimNode {
  const dir = mkdtempSync(join(TMP_ROOT, `${runPrefix}-${opts.name}-`));
  return new SimNode(opts.name, netns, dir, opts.underlayIP, opts.podCIDR);
}

/** Creates the node's netns (lo up, ip_forward=1) and starts both OVS daemons; `ovs-vsctl --no-wait init`. */
export async function bootNode(node: SimNode): Promise<void> {
  await addNetns(node.netns);
  await node.exec(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
  await node.startOvsdb();
  await node.vsctl("--no-wait", "init");
  await node.startVswitchd();
}
