// ovsplanectl trace: a packet's path through the pipeline (ofproto/trace), table by table in ovsplane's words, and its verdict.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Argv } from "yargs";
import { run } from "../../host/exec.ts";
import { loadNetworks, readBridge, readPolicyReport, DEFAULT_CONF_DIR, type NetworkConf, type PortState } from "../node-state.ts";
import { json, outTo, paint, table, type Out } from "../output.ts";
import { last } from "../common.ts";
import { attachmentId, gatewayMac, GATEWAY_PORT, networkId } from "../../dataplane/names.ts";
import { ipv4Of, PortRole, Tag } from "../../dataplane/attachment.ts";
import { parseTrace } from "../trace/parse.ts";
import { explainTrace, type Explanation } from "../trace/explain.ts";
import type { PodRef, TraceContext } from "../trace/names.ts";
import { firstHost, flowSpec, parseTarget, PROTOS, type Proto } from "../trace/flowspec.ts";
import { describeRule } from "../../policy/report.ts";

/**
 * The ovs-appctl target of a node's ovs-vswitchd: `<dir of ovsdbSocket>/vswitchd.ctl` when it exists
 * (the simulated nodes), else `<dir>/ovs-vswitchd.<pid>.ctl` from its pidfile (a packaged OVS), else
 * "ovs-vswitchd" (ovs-appctl's own lookup in its run dir).
 */
export function defaultVswitchdTarget(ovsdbSocket: string): string {
  if (ovsdbSocket.startsWith("unix:")) {
    const dir = dirname(ovsdbSocket.slice(5));
    const ctl = join(dir, "vswitchd.ctl");
    if (existsSync(ctl)) return ctl;
    try {
      const pid = readFileSync(join(dir, "ovs-vswitchd.pid"), "utf8").trim();
      const pidCtl = join(dir, `ovs-vswitchd.${pid}.ctl`);
      if (existsSync(pidCtl)) return pidCtl;
    } catch {
      // no pidfile there: ovs-appctl's default
    }
  }
  return "ovs-vswitchd";
}

/** A pod as a trace names it: "namespace/name", else its container ID. */
function podRef(p: PortState): PodRef | undefined {
  const a = p.attachment;
  if (!a) return undefined;
  const ref: PodRef = {
    id: attachmentId(a.network, a.containerID, a.ifname),
    label: a.podNamespace && a.podName ? `${a.podNamespace}/${a.podName}` : a.containerID,
    segment: a.segment,
    mac: a.mac,
  };
  if (p.ofport !== undefined) ref.ofport = p.ofport;
  const ip = ipv4Of(a);
  if (ip) ref.ip = ip;
  return ref;
}

/** The network to trace in: --network, else the only (or first) ovsplane network of the conf dir. */
function pickNetwork(confDir: string, name?: string): NetworkConf {
  const { networks, problems } = loadNetworks(confDir);
  const found = name === undefined ? networks : networks.filter((n) => n.cfg.name === name);
  const n = found[0];
  if (!n) {
    const why = problems.map((p) => `${p.file}: ${p.why}`).join("; ");
    throw new Error(`no ovsplane network${name ? ` named ${name}` : ""} in ${confDir}${why ? ` (${why})` : ""}`);
  }
  return n;
}

/** Options of traceCommand's handler. */
interface TraceFlags {
  from: string;
  to: string;
  proto?: string;
  srcIp?: string;
  confDir: string;
  network?: string;
  vswitchdCtl?: string;
  ctState?: string;
  json: boolean;
  raw: boolean;
}

/** The whole trace as the JSON output shows it. */
export interface TraceReport extends Explanation {
  network: string;
  bridge: string;
  from: { kind: "node"; port: number; ip: string } | { kind: "pod"; pod: string; port: number; ip?: string; mac: string; segment: number };
  to: { ip: string; port?: number; proto: Proto };
  flow: string;
  raw?: string;
}

/** Resolves the flags against the node, runs ofproto/trace and explains it. */
export async function traceReport(f: TraceFlags): Promise<TraceReport> {
  const net = pickNetwork(f.confDir, f.network);
  const cfg = net.cfg;
  const to = parseTarget(f.to);
  const proto = (f.proto ?? (to.port !== undefined ? "tcp" : "icmp")) as Proto;
  if (!PROTOS.includes(proto)) throw new Error(`--proto ${proto}: one of ${PROTOS.join(", ")}`);
  const br = await readBridge(cfg);
  if (!br.ovsdb.ok) throw new Error(`OVSDB ${cfg.ovsdbSocket}: ${br.ovsdb.error}`);
  if (!br.exists) throw new Error(`bridge ${cfg.bridge} does not exist (no pod attached yet?)`);
  const role = (r: string) => br.shared.find((p) => p.externalIds[Tag.Role] === r)?.ofport;
  const gatewayPort = role(PortRole.Gateway) ?? br.shared.find((p) => p.name === GATEWAY_PORT)?.ofport;
  const tunnelPort = role(PortRole.Tunnel);
  const pods = br.ports.flatMap((p) => podRef(p) ?? []);
  const ctx: TraceContext = {
    pods,
    networks: loadNetworks(f.confDir).networks.map((n) => ({ name: n.cfg.name, netId: networkId(n.cfg.name), peers: n.cfg.peers })),
  };
  const policies = readPolicyReport(cfg);
  if (policies) {
    ctx.policies = policies.cookies;
    ctx.rules = Object.fromEntries(policies.rules.filter((r) => r.conjId).map((r) => [r.conjId, describeRule(r)]));
  }
  if (gatewayPort !== undefined) ctx.gatewayPort = gatewayPort;
  if (tunnelPort !== undefined) ctx.tunnelPort = tunnelPort;
  const gwMac = gatewayMac(cfg.bridge);
  let from: TraceReport["from"];
  let spec: string;
  if (f.from === "node") {
    if (gatewayPort === undefined) throw new Error(`bridge ${cfg.bridge} has no gateway port ${GATEWAY_PORT}`);
    const cidr = cfg.podCIDRs.find((c) => !c.includes(":"));
    const ip = f.srcIp ?? (cidr ? firstHost(cidr) : undefined);
    if (!ip) throw new Error("--from node: the network names no IPv4 pod range; give --src-ip");
    from = { kind: "node", port: gatewayPort, ip };
    ctx.from = "node";
    spec = flowSpec({ proto, inPort: gatewayPort, dlSrc: gwMac, dlDst: gwMac, nwSrc: ip, to });
  } else {
    const mine = br.ports.filter((p) => p.attachment && p.network === cfg.name);
    const port =
      mine.find((p) => `${p.attachment!.podNamespace}/${p.attachment!.podName}` === f.from) ??
      mine.find((p) => p.attachment!.containerID === f.from) ??
      mine.find((p) => p.attachment!.containerID.startsWith(f.from) && f.from.length >= 6);
    const pod = port && podRef(port);
    if (!pod) throw new Error(`--from ${f.from}: no pod of network ${cfg.name} on ${cfg.bridge} by namespace/name or container ID`);
    if (pod.ofport === undefined) throw new Error(`pod ${pod.label}: its port has no OpenFlow number (ovs-vswitchd down?)`);
    const ip = f.srcIp ?? pod.ip;
    if (!ip) throw new Error(`pod ${pod.label} has no IPv4 address; give --src-ip`);
    from = { kind: "pod", pod: pod.label, port: pod.ofport, mac: pod.mac, segment: pod.segment, ...(pod.ip ? { ip: pod.ip } : {}) };
    ctx.from = pod;
    spec = flowSpec({ proto, inPort: pod.ofport, dlSrc: pod.mac, dlDst: gwMac, nwSrc: ip, to });
  }
  const target = f.vswitchdCtl ?? defaultVswitchdTarget(cfg.ovsdbSocket);
  const argv = ["ovs-appctl", "-t", target, "ofproto/trace", ...(f.ctState ? ["--ct-next", f.ctState] : []), cfg.bridge, spec];
  const r = await run(argv, { timeoutMs: 15_000 });
  const report: TraceReport = {
    network: cfg.name,
    bridge: cfg.bridge,
    from,
    to: { ...to, proto },
    flow: spec,
    ...explainTrace(parseTrace(r.stdout), ctx),
  };
  if (f.raw) report.raw = r.stdout;
  return report;
}

/** The trace for people: a header, one row per step, the verdict. */
export function printTrace(out: Out, r: TraceReport): void {
  const src = r.from.kind === "node" ? `the node (${r.from.ip})` : `pod ${r.from.pod} (${r.from.ip ?? "?"}, segment ${r.from.segment})`;
  out.line(`trace ${src} → ${r.to.ip}${r.to.port !== undefined ? `:${r.to.port}` : ""} ${r.to.proto}, network ${r.network}, bridge ${r.bridge}`);
  out.line(`flow: ${r.flow}`);
  out.line();
  const rows: string[][] = [];
  let pass = 0;
  for (const s of r.steps) {
    if (s.pass !== pass) {
      pass = s.pass;
      const ct = r.resumes.find((x) => x.pass === pass)?.ctState ?? "";
      rows.push(["", "↻", "", `conntrack: recirculated, resumed with ct_state ${ct}`]);
    }
    const dropped = s.says.startsWith("dropped") || s.says.includes("→ dropped");
    rows.push([String(s.table), s.tableName, s.owner ?? (s.bridge ? "(underlay)" : "(no flow)"), dropped ? paint(out, "bad", s.says) : s.says]);
  }
  table(out, ["TABLE", "NAME", "FLOW OWNER", "WHAT HAPPENS"], rows);
  out.line();
  const v = r.verdict;
  const kind = v.kind === "dropped" ? "bad" : "ok";
  out.line(`verdict: ${paint(out, kind, r.summary)}`);
  if (v.kind === "tunnel" && v.note) out.line(`note: ${v.note}`);
  out.line(`datapath actions: ${r.datapathActions}`);
  if (r.raw) {
    out.line();
    out.line(r.raw.trimEnd());
  }
}

function builder(y: Argv<object>) {
  return y
    .option("from", { type: "string", coerce: last, demandOption: true, describe: "the sender: NAMESPACE/POD, a container ID, or node (the node itself, through the gateway)" })
    .option("to", { type: "string", coerce: last, demandOption: true, describe: "the destination: IPv4[:PORT]" })
    .option("proto", { type: "string", coerce: last, choices: PROTOS, describe: "tcp, udp or icmp (default: tcp with a port, else icmp)" })
    .option("src-ip", { type: "string", coerce: last, describe: "send from this address instead of the pod's (e.g. to see the spoof guard)" })
    .option("conf-dir", { type: "string", coerce: last, default: DEFAULT_CONF_DIR, describe: "where the runtime finds conflists" })
    .option("network", { type: "string", coerce: last, describe: "the network (default: the first ovsplane network of --conf-dir)" })
    .option("vswitchd-ctl", { type: "string", coerce: last, describe: "ovs-appctl target of ovs-vswitchd (default: vswitchd.ctl next to the OVSDB socket, else ovs-vswitchd)" })
    .option("ct-state", { type: "string", coerce: last, describe: "ct_state for the conntrack resume (ofproto/trace --ct-next; default trk,new)" })
    .option("json", { type: "boolean", default: false, describe: "one JSON document" })
    .option("raw", { type: "boolean", default: false, describe: "also show ofproto/trace's own output" })
    .example("$0 trace --from default/web --to 10.244.2.7:80", "a pod to a pod on another node")
    .example("$0 trace --from node --to 10.244.1.5 --proto icmp", "the node (kubelet) to a local pod")
    .example("$0 trace --from default/web --to 10.244.1.9 --src-ip 10.244.1.250", "a spoofed source");
}

/** The `trace` command (a yargs command module). */
export const traceCommand = {
  command: "trace",
  describe: "show a packet's path through the pipeline, table by table, and where it ends up",
  builder,
  handler: async (a: Awaited<ReturnType<typeof builder>["argv"]>) => {
    try {
      const r = await traceReport(a as unknown as TraceFlags);
      const out = outTo();
      if (a.json) json(out, r);
      else printTrace(out, r);
    } catch (err) {
      process.stderr.write(`ovsplanectl: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  },
};
