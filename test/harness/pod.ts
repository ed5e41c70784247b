// A simulated pod: a bare netns plus reachability probes (ping, a one-shot TCP listener and client).
import { randomBytes } from "node:crypto";
import type { ExecOptions, ExecResult } from "../../lib/host/exec.ts";
import { delNetns, netnsPath, nsExec, sleep } from "./netns.ts";

/** A TCP listener started by SimPod.listenTcp: accepts one connection and records what it received. */
export interface TcpListener {
  /** The port listened on. */
  port: number;
  /** Settles when the listener exits (after one connection, or at its timeout). */
  done: Promise<ExecResult>;
  /** Waits for the listener to exit and returns the bytes it received (as text). */
  received(): Promise<string>;
}

/** What SimPod.connectTcp saw. */
export interface TcpConnectResult {
  /** True when the connection was made and the data sent (nc exit 0). */
  ok: boolean;
  /** nc's exit code (124 = timed out). */
  code: number;
  /** nc's stderr, for assertion messages. */
  stderr: string;
}

/** One simulated pod (a network namespace). Create it with Testbed.createPod. */
export class SimPod {
  /**
   * @param name short pod name
   * @param netns the pod's namespace name
   */
  constructor(readonly name: string, readonly netns: string) {}

  /** `/var/run/netns/<netns>`, what a runtime passes as CNI_NETNS. */
  get netnsPath(): string { return netnsPath(this.netns); }

  /** Runs argv inside the pod's netns; throws on non-zero exit unless allowFail. */
  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return nsExec(this.netns, argv, opts);
  }

  /**
   * Pings ip from the pod: `ping -c <count> -W 1`, repeated up to `tries` times (default 5; the
   * userspace datapath drops the first packet to a new tunnel destination). True on the first success.
   */
  async ping(ip: string, opts: { count?: number; tries?: number } = {}): Promise<boolean> {
    const tries = opts.tries ?? 5;
    for (let i = 0; i < tries; i++) {
      const r = await this.exec(["ping", "-n", "-q", "-c", String(opts.count ?? 1), "-W", "1", ip], { allowFail: true, timeoutMs: 15_000 });
      if (r.code === 0) return true;
    }
    return false;
  }

  /** IPv4 addresses (CIDR) of ifname inside the pod, e.g. ["10.244.1.2/24"]. */
  async addresses(ifname = "eth0"): Promise<string[]> {
    const r = await this.exec(["ip", "-j", "-4", "addr", "show", "dev", ifname], { allowFail: true });
    if (r.code !== 0) return [];
    const info = JSON.parse(r.stdout || "[]") as { addr_info?: { local: string; prefixlen: number }[] }[];
    return info.flatMap((i) => (i.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  }

  /** Turns TX checksum offload off on ifname (TCP over userspace VXLAN needs it; see dataplane.md). */
  async txOffloadOff(ifname = "eth0"): Promise<void> {
    await this.exec(["ethtool", "-K", ifname, "tx", "off"], { allowFail: false });
  }

  /**
   * Starts a one-shot TCP listener (`nc -d -l <port>`) in the pod and resolves once it is listening.
   * It exits after one connection closes, or after timeoutMs (default 20 s).
   */
  async listenTcp(port: number, opts: { timeoutMs?: number } = {}): Promise<TcpListener> {
    const secs = Math.ceil((opts.timeoutMs ?? 20_000) / 1000);
    const done = this.exec(["timeout", String(secs), "nc", "-d", "-l", String(port)], {
      allowFail: true, timeoutMs: secs * 1000 + 5000,
    });
    let exited = false;
    void done.then(() => (exited = true));
    const until = Date.now() + 5000;
    for (;;) {
      const ss = await this.exec(["ss", "-Htln", `sport = :${port}`], { allowFail: true });
      if (ss.stdout.trim()) break;
      if (exited || Date.now() > until) {
        const r = await done;
        throw new Error(`pod ${this.name}: nc did not listen on ${port}: ${r.stderr.trim()}`);
      }
      await sleep(30);
    }
    return { port, done, received: async () => (await done).stdout };
  }

  /** Connects to ip:port from the pod, sends data and closes (`nc -N -w 3`, whole attempt <= timeoutMs). */
  async connectTcp(ip: string, port: number, data = "hello\n", opts: { timeoutMs?: number } = {}): Promise<TcpConnectResult> {
    const secs = Math.ceil((opts.timeoutMs ?? 8000) / 1000);
    const r = await this.exec(["timeout", String(secs), "nc", "-N", "-w", "3", ip, String(port)], {
      input: data, allowFail: true, timeoutMs: secs * 1000 + 5000,
    });
    return { ok: r.code === 0, code: r.code, stderr: r.stderr };
  }

  /**
   * True when a TCP connection from this pod to `server` at ip:port delivers a random token
   * (listener in `server`, client here). Needs TX offload off across VXLAN (txOffloadOff).
   */
  async tcpCheck(server: SimPod, ip: string, port: number, opts: { timeoutMs?: number } = {}): Promise<boolean> {
    const token = `ovsp-${randomBytes(4).toString("hex")}\n`;
    const l = await server.listenTcp(port, { timeoutMs: (opts.timeoutMs ?? 8000) + 2000 });
    const c = await this.connectTcp(ip, port, token, opts);
    if (!c.ok) {
      // Unblock the listener so it does not linger until its timeout.
      await server.connectTcp("127.0.0.1", port, "", { timeoutMs: 2000 });
    }
    const got = await l.received();
    return c.ok && got === token;
  }

  /** Kills every process in the pod's netns and deletes it. Never throws. */
  async destroy(): Promise<void> {
    await delNetns(this.netns).catch(() => undefined);
  }
}
