// An outside host on the underlay (no route to pods), and TCP probes for any netns: a peer-recording server, a client, a SYN sniffer.
import type { ExecOptions, ExecResult } from "../../lib/host/exec.ts";
import { addNetns, sleep, uniqueNsName } from "./netns.ts";
import { SimPod } from "./pod.ts";
import { testbed as defaultTestbed, type Testbed } from "./testbed.ts";

/** Anything commands can run in: a SimPod, a SimNode, an OutsideHost. */
export interface NetnsTarget {
  readonly name: string;
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
}

/** A host outside the cluster: one netns with a veth into the underlay switch, an address, and no route to any pod range. */
export class OutsideHost extends SimPod {
  /**
   * @param name short name
   * @param netns its namespace
   * @param ip its underlay address (no prefix length)
   */
  constructor(name: string, netns: string, readonly ip: string) {
    super(name, netns);
  }
}

/** Options of createOutsideHost. */
export interface OutsideHostOptions {
  /** Short name (default "outside"). */
  name?: string;
  /** Address with prefix length on the underlay (default "198.18.0.100/24"). */
  address?: string;
  /** The testbed whose underlay it joins and whose teardownAll removes it (default: the default testbed). */
  testbed?: Testbed;
}

let outsideCount = 0;

/**
 * Creates an outside host: a netns whose `eth0` is cabled to the underlay switch `sw0`, with its address,
 * TX checksum offload off (TCP into the userspace datapath needs it), rp_filter off (so it sees, and a
 * sniffer records, packets from sources it has no route back to), and no route beyond its own subnet.
 * Recorded as a pod of the testbed, so teardownAll removes it.
 */
export async function createOutsideHost(opts: OutsideHostOptions = {}): Promise<OutsideHost> {
  const tb = opts.testbed ?? defaultTestbed;
  const address = opts.address ?? "198.18.0.100/24";
  const host = new OutsideHost(opts.name ?? "outside", uniqueNsName(opts.name ?? "outside"), address.split("/")[0]!);
  tb.pods.push(host);
  await addNetns(host.netns);
  const sw = await tb.underlaySwitch();
  const cable = `o${++outsideCount}`;
  await host.exec(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", cable, "netns", sw]);
  await host.exec(["ip", "netns", "exec", sw, "ip", "link", "set", cable, "master", "sw0", "up"]);
  await host.exec(["ip", "addr", "add", address, "dev", "eth0"]);
  await host.exec(["ip", "link", "set", "eth0", "up"]);
  await host.exec(["ethtool", "-K", "eth0", "tx", "off"]);
  for (const k of ["all", "default", "eth0"]) await host.exec(["sysctl", "-q", "-w", `net.ipv4.conf.${k}.rp_filter=0`]);
  return host;
}

/** One connection a TcpServer accepted. */
export interface ServedConnection {
  /** The client's address as the server saw it (after any NAT on the way). */
  peer: string;
  peerPort: number;
  /** The server's own address of the connection. */
  local: string;
  /** What the client sent. */
  data: string;
}

/** A TCP server started by serveTcp. */
export interface TcpServer {
  port: number;
  /** Waits until the server exits (after `connections` connections closed, or at its timeout) and returns what it accepted. */
  result(): Promise<ServedConnection[]>;
  /** Ends the server now (a local stop message) and returns what it accepted. */
  stop(): Promise<ServedConnection[]>;
}

const SERVER_JS = `
const net = require("net");
const [port, count, ms] = process.argv.slice(1).map(Number);
const seen = [];
let closed = 0;
const bare = (a) => String(a || "").replace(/^::ffff:/, "");
const finish = () => { process.stdout.write(JSON.stringify(seen.filter((c) => c.data !== "__stop__\\n"))); process.exit(0); };
net.createServer((s) => {
  const c = { peer: bare(s.remoteAddress), peerPort: s.remotePort, local: bare(s.localAddress), data: "" };
  seen.push(c);
  s.setEncoding("utf8");
  s.on("error", () => undefined);
  s.write("peer " + c.peer + "\\n");
  s.on("data", (d) => { c.data += d; });
  s.on("close", () => { if (c.data === "__stop__\\n" || ++closed >= count) finish(); });
}).listen(port, "0.0.0.0");
setTimeout(finish, ms);
`;

/**
 * Starts a TCP server in target on port: it answers each client with `peer <client address>\n`, records
 * the client's address (as seen here) and what it sent, and exits after `connections` (default 1)
 * connections closed or after timeoutMs (default 10 s). Resolves once it is listening.
 */
export async function serveTcp(target: NetnsTarget, port: number, opts: { timeoutMs?: number; connections?: number } = {}): Promise<TcpServer> {
  const ms = opts.timeoutMs ?? 10_000;
  const done = target.exec(["node", "-e", SERVER_JS, String(port), String(opts.connections ?? 1), String(ms)], { allowFail: true, timeoutMs: ms + 5000 });
  let exited = false;
  void done.then(() => (exited = true));
  const until = Date.now() + 5000;
  for (;;) {
    const ss = await target.exec(["ss", "-Htln", `sport = :${port}`], { allowFail: true });
    if (ss.stdout.trim()) break;
    if (exited || Date.now() > until) {
      const r = await done;
      throw new Error(`${target.name}: TCP server did not listen on ${port}: ${r.stderr.trim()}`);
    }
    await sleep(25);
  }
  const result = async (): Promise<ServedConnection[]> => {
    const r = await done;
    try { return JSON.parse(r.stdout || "[]") as ServedConnection[]; } catch { throw new Error(`${target.name}: server output: ${r.stdout} ${r.stderr}`); }
  };
  const stop = async (): Promise<ServedConnection[]> => {
    if (!exited) await tcpRequest(target, "127.0.0.1", port, { data: "__stop__\n", timeoutMs: 2000 });
    return result();
  };
  return { port, result, stop };
}

/** What tcpRequest saw. */
export interface TcpRequestResult {
  /** Connected, sent, and the server closed the connection in order (its whole reply read). */
  ok: boolean;
  /** The three-way handshake completed. */
  connected: boolean;
  /** The socket error code (ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT...) or "timeout" (the probe's own limit). */
  error?: string;
  /** What the server sent (a serveTcp server: `peer <address>\n`). */
  reply: string;
  /** The client's local address of the connection (empty when it never connected). */
  local: string;
  /** Milliseconds until the outcome. */
  ms: number;
}

const CLIENT_JS = `
const net = require("net");
const [ip, port, ms, data] = process.argv.slice(1);
const t0 = Date.now();
let reply = "", connected = false, local = "";
const s = net.connect({ host: ip, port: Number(port) });
s.setEncoding("utf8");
const done = (r) => { console.log(JSON.stringify({ ...r, connected, reply, local, ms: Date.now() - t0 })); process.exit(0); };
const timer = setTimeout(() => done({ ok: false, error: "timeout" }), Number(ms));
s.on("connect", () => { connected = true; local = String(s.localAddress).replace(/^::ffff:/, ""); s.end(data); });
s.on("data", (d) => { reply += d; });
s.on("end", () => { clearTimeout(timer); done({ ok: connected }); });
s.on("error", (e) => { clearTimeout(timer); done({ ok: false, error: e.code || String(e) }); });
`;

/** Connects from target to ip:port, sends data (default "hello\n"), half-closes and reads the reply until the server closes; never throws. */
export async function tcpRequest(target: NetnsTarget, ip: string, port: number, opts: { data?: string; timeoutMs?: number } = {}): Promise<TcpRequestResult> {
  const ms = opts.timeoutMs ?? 4000;
  const r = await target.exec(["node", "-e", CLIENT_JS, ip, String(port), String(ms), opts.data ?? "hello\n"], { allowFail: true, timeoutMs: ms + 5000 });
  try {
    return JSON.parse(r.stdout) as TcpRequestResult;
  } catch {
    return { ok: false, connected: false, error: `client failed: exit ${r.code} ${r.stderr.trim()}`, reply: "", local: "", ms };
  }
}

/** One line for assertion messages: `ok` or the error, what came back. */
export function describeRequest(r: TcpRequestResult): string {
  return r.ok ? `ok (reply ${JSON.stringify(r.reply)}, from ${r.local}, ${r.ms} ms)` : `failed: ${r.error ?? "no reply"} (connected=${r.connected}, ${r.ms} ms)`;
}

/** Result of a request through a serveTcp server: what the client saw and what the server recorded. */
export interface ProbeResult {
  client: TcpRequestResult;
  served: ServedConnection[];
}

/**
 * A whole probe: serveTcp in `server` on serverPort (default: port; a Service's target port), tcpRequest
 * from `client` to ip:port, then the server's record. The server is always stopped. Both sides end
 * within about timeoutMs (default 4 s).
 */
export async function probeTcp(client: NetnsTarget, server: NetnsTarget, ip: string, port: number, opts: { timeoutMs?: number; serverPort?: number } = {}): Promise<ProbeResult> {
  const timeoutMs = opts.timeoutMs ?? 4000;
  const srv = await serveTcp(server, opts.serverPort ?? port, { timeoutMs: timeoutMs + 3000 });
  const c = await tcpRequest(client, ip, port, { timeoutMs, data: `from ${client.name}\n` });
  const served = c.ok ? await srv.result() : await srv.stop();
  return { client: c, served };
}

const SNIFF_PY = `
import json, socket, sys, time
port, end = int(sys.argv[1]), time.time() + float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.settimeout(0.1)
seen = []
while time.time() < end:
    try:
        b = s.recv(65535)
    except socket.timeout:
        continue
    ihl = (b[0] & 15) * 4
    src = socket.inet_ntoa(b[12:16])
    if int.from_bytes(b[ihl + 2:ihl + 4], "big") == port and b[ihl + 13] & 0x02 and not b[ihl + 13] & 0x10 and not src.startswith("127."):
        seen.append(src)
print(json.dumps(seen))
`;

/** A running SYN sniffer (sniffSyns). */
export interface SynSniffer {
  /** Waits for the sniffing window to end; the source address of every SYN to the port seen, in order. */
  sources(): Promise<string[]>;
}

/**
 * Records the source address of every TCP SYN to `port` from another host (loopback ignored) that
 * reaches target's IP stack during windowMs (a raw socket: it sees SYNs even when the host cannot
 * answer them). Resolves once sniffing.
 */
export async function sniffSyns(target: NetnsTarget, port: number, windowMs: number): Promise<SynSniffer> {
  const done = target.exec(["/usr/bin/python3", "-c", SNIFF_PY, String(port), String(windowMs / 1000)], { allowFail: true, timeoutMs: windowMs + 5000 });
  const until = Date.now() + 3000;
  while ((await target.exec(["ss", "-Hwa"], { allowFail: true })).stdout.trim() === "" && Date.now() < until) await sleep(25);
  return {
    sources: async () => {
      const r = await done;
      try { return JSON.parse(r.stdout) as string[]; } catch { throw new Error(`${target.name}: sniffer failed: ${r.stderr.trim()}`); }
    },
  };
}
