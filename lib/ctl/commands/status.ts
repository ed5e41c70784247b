// ovsplanectl status: is this node able to run ovsplane pods (OVS, bridge, shared ports, conflist, peers, segments, pods)?
import { request } from "node:http";
import type { Argv } from "yargs";
import { PortRole } from "../../dataplane/attachment.ts";
import { bridgeKey, flowOwner, loadNetworks, nodeFlags, readBridges, readLeases, sharedPort, type BridgeState, type ConfProblem, type NetworkConf, type NetworkLeases } from "../node-state.ts";
import { guardAsync, report, mark, paint, pairs, type Out } from "../output.ts";
import { podRows, type PodRow } from "./pods.ts";
import { VERSION } from "./version.ts";

/** A shared port as status reports it. */
export interface SharedPortStatus {
  name: string;
  ofport?: number;
}

/** One network's status on this node. */
export interface NetworkStatus {
  name: string;
  file: string;
  bridge: string;
  ovsdb: { ok: boolean; socket: string; error?: string };
  vswitchd: { ok: boolean; socket: string; error?: string };
  bridgeExists: boolean;
  datapathType: { configured: string; actual?: string };
  tunnel?: SharedPortStatus;
  gateway?: SharedPortStatus;
  nodeFlows: boolean;
  peers: { nodeIP: string; podCIDR: string; accepted: boolean; routed: boolean }[];
  segments: { segment: number; pods: number; flow: boolean }[];
  pods: { total: number; healthy: number };
}

/** What `status --json` prints. */
export interface StatusReport {
  healthy: boolean;
  /** What makes the node unhealthy. */
  problems: string[];
  /** What is odd but harmless (e.g. no pod yet, so no bridge yet). */
  warnings: string[];
  versions: { ovsplane: string; ovs?: string; ovsdbSchema?: string };
  conf: { dir: string; files: string[]; problems: ConfProblem[] };
  networks: NetworkStatus[];
  /** ovsplane-agent's answer on its --listen address (absent: not asked). */
  agent?: AgentHealth;
}

/** What ovsplane-agent answered on /readyz. */
export interface AgentHealth {
  listen: string;
  /** Something answered on the address. */
  running: boolean;
  /** /readyz said ready (API synced, OVS answering). */
  ready: boolean;
  detail?: string;
}

/** Asks ovsplane-agent's /readyz at listen (HOST:PORT); never throws. */
export async function probeAgent(listen: string, timeoutMs = 1000): Promise<AgentHealth> {
  const [host, port] = [listen.slice(0, listen.lastIndexOf(":")), Number(listen.slice(listen.lastIndexOf(":") + 1))];
  return new Promise((resolve) => {
    const req = request({ host, port, path: "/readyz", timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ listen, running: true, ready: res.statusCode === 200, detail: body.trim().slice(0, 200) }));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (e) => resolve({ listen, running: false, ready: false, detail: e.message }));
    req.end();
  });
}

/** What status is computed from (all read before; buildStatus is pure). */
export interface StatusInput {
  confDir: string;
  files: string[];
  confProblems: ConfProblem[];
  networks: NetworkConf[];
  bridges: ReadonlyMap<string, BridgeState>;
  leases: ReadonlyMap<string, NetworkLeases>;
  agent?: AgentHealth;
}

function shared(b: BridgeState, role: (typeof PortRole)[keyof typeof PortRole]): SharedPortStatus | undefined {
  const p = sharedPort(b, role);
  return p && (p.ofport === undefined ? { name: p.name } : { name: p.name, ofport: p.ofport });
}

/** The status of one network on its bridge, and what is wrong with it (pure). */
export function networkStatus(n: NetworkConf, b: BridgeState, rows: readonly PodRow[]): { status: NetworkStatus; problems: string[]; warnings: string[] } {
  const owners = new Set(b.flows.map((f) => flowOwner(f.flow.cookie, { ports: b.ports, networks: [n] }).key));
  const name = n.cfg.name;
  const segs = new Map<number, number>();
  for (const r of rows) if (r.segment !== undefined) segs.set(r.segment, (segs.get(r.segment) ?? 0) + 1);
  const s: NetworkStatus = {
    name,
    file: n.file,
    bridge: b.bridge,
    ovsdb: { ok: b.ovsdb.ok, socket: n.cfg.ovsdbSocket, ...(b.ovsdb.error ? { error: b.ovsdb.error } : {}) },
    vswitchd: { ok: b.vswitchd.ok, socket: n.cfg.ofSocket, ...(b.vswitchd.error ? { error: b.vswitchd.error } : {}) },
    bridgeExists: b.exists,
    datapathType: { configured: n.cfg.datapathType, ...(b.datapathType ? { actual: b.datapathType } : {}) },
    nodeFlows: owners.has("node"),
    peers: n.cfg.peers.map((p) => ({ ...p, accepted: owners.has(`peer/${p.nodeIP}`), routed: owners.has(`route/${name}/${p.nodeIP}`) })),
    segments: [...segs].sort((x, y) => x[0] - y[0]).map(([segment, pods]) => ({ segment, pods, flow: owners.has(`segment/${segment}`) })),
    pods: { total: rows.length, healthy: rows.filter((r) => !r.problems.length).length },
  };
  const tunnel = shared(b, PortRole.Tunnel);
  const gateway = shared(b, PortRole.Gateway);
  if (tunnel) s.tunnel = tunnel;
  if (gateway) s.gateway = gateway;
  const problems: string[] = [];
  const warnings: string[] = [];
  const at = `network ${name}`;
  const hasPods = rows.length > 0;
  if (!b.ovsdb.ok) problems.push(`${at}: OVSDB does not answer at ${n.cfg.ovsdbSocket}: ${b.ovsdb.error}`);
  else if (!b.exists) warnings.push(`${at}: bridge ${b.bridge} does not exist yet (the first ADD creates it); ovs-vswitchd not checked`);
  else {
    if (!b.vswitchd.ok) problems.push(`${at}: ovs-vswitchd does not serve ${b.bridge} at ${n.cfg.ofSocket}: ${b.vswitchd.error}`);
    if (b.datapathType !== n.cfg.datapathType) warnings.push(`${at}: bridge ${b.bridge} has datapath ${b.datapathType}, the config says ${n.cfg.datapathType}`);
    for (const [what, p] of [["tunnel", tunnel], ["gateway", gateway]] as const) {
      if (!p?.ofport || p.ofport <= 0) (hasPods ? problems : warnings).push(`${at}: ${what} port ${p ? `${p.name} has no OpenFlow port` : "missing"}`);
    }
  }
  if (b.vswitchd.ok && hasPods) {
    if (!s.nodeFlows) problems.push(`${at}: the pipeline's default flows are missing`);
    for (const p of s.peers) {
      if (!p.accepted) problems.push(`${at}: no flow accepts tunnel traffic from peer ${p.nodeIP}`);
      if (!p.routed) problems.push(`${at}: no route flow to ${p.podCIDR} via ${p.nodeIP}`);
    }
    for (const g of s.segments) if (!g.flow) problems.push(`${at}: segment ${g.segment}'s flow is missing`);
  }
  for (const r of rows) for (const p of r.problems) problems.push(`${at}: pod ${r.pod ? `${r.namespace}/${r.pod}` : r.containerID} (${r.ifname}): ${p}`);
  return { status: s, problems, warnings };
}

/** The whole status report and its verdict: healthy only with a valid conflist, OVS answering and nothing broken (pure). */
export function buildStatus(i: StatusInput): StatusReport {
  const report: StatusReport = {
    healthy: false,
    problems: [],
    warnings: [],
    versions: { ovsplane: VERSION },
    conf: { dir: i.confDir, files: i.files, problems: i.confProblems },
    networks: [],
  };
  if (!i.networks.length) report.problems.push(`no valid ovsplane network in ${i.confDir}`);
  for (const p of i.confProblems) report.problems.push(`${p.file}: ${p.why}`);
  for (const n of i.networks) {
    const b = i.bridges.get(bridgeKey(n.cfg));
    if (!b) continue;
    if (b.versions.ovs) report.versions.ovs = b.versions.ovs;
    if (b.versions.db) report.versions.ovsdbSchema = b.versions.db;
    const rows = podRows(b, i.leases, new Set([n.cfg.name]));
    const { status, problems, warnings } = networkStatus(n, b, rows);
    report.networks.push(status);
    report.problems.push(...problems);
    report.warnings.push(...warnings);
  }
  if (i.agent) {
    report.agent = i.agent;
    // A conflist in agent mode needs the agent: without it no peer, route or replay happens.
    const agentMode = i.networks.filter((n) => n.cfg.agent).map((n) => n.cfg.name);
    if (agentMode.length && !i.agent.running) report.problems.push(`ovsplane-agent does not answer on ${i.agent.listen} (network ${agentMode.join(", ")} is in agent mode): ${i.agent.detail ?? ""}`);
    else if (i.agent.running && !i.agent.ready) report.problems.push(`ovsplane-agent on ${i.agent.listen} is not ready: ${i.agent.detail ?? ""}`);
  }
  report.healthy = report.problems.length === 0;
  return report;
}

/** Reads the node and builds its status report. */
export async function collectStatus(confDir: string, network?: string, agentListen = "127.0.0.1:9109"): Promise<StatusReport> {
  const loaded = loadNetworks(confDir);
  const networks = network === undefined ? loaded.networks : loaded.networks.filter((n) => n.cfg.name === network);
  const confProblems = [...loaded.problems];
  if (network !== undefined && !networks.length) confProblems.push({ file: confDir, why: `no ovsplane network ${JSON.stringify(network)}` });
  const leases = new Map<string, NetworkLeases>();
  for (const n of networks) leases.set(n.cfg.name, await readLeases(n));
  const [bridges, agent] = await Promise.all([readBridges(networks), probeAgent(agentListen)]);
  return buildStatus({ confDir, files: loaded.files, confProblems, networks, bridges, leases, agent });
}

const port = (p?: SharedPortStatus) => (p ? `${p.name} (ofport ${p.ofport ?? "none"})` : "missing");

/** Prints a status report for people. */
export function printStatus(out: Out, r: StatusReport): void {
  const v = r.versions;
  out.line(`ovsplane ${v.ovsplane}, Open vSwitch ${v.ovs ?? "? (not recorded in OVSDB)"}${v.ovsdbSchema ? ` (schema ${v.ovsdbSchema})` : ""}`);
  out.line(`conf dir ${r.conf.dir}: ${r.conf.files.join(", ") || "no conf files"}`);
  for (const n of r.networks) {
    out.line();
    out.line(`network ${n.name} (${n.file})`);
    const rows: [string, string][] = [
      ["OVSDB", `${mark(out, n.ovsdb.ok, "ok", "DOWN")} ${n.ovsdb.socket}`],
      ["ovs-vswitchd", `${n.bridgeExists || n.vswitchd.ok ? mark(out, n.vswitchd.ok, "ok", "DOWN") : "not checked"} ${n.vswitchd.socket}`],
      ["bridge", n.bridgeExists ? `${n.bridge} (datapath ${n.datapathType.actual})` : paint(out, "warn", `${n.bridge} not created yet`)],
      ["tunnel", port(n.tunnel)],
      ["gateway", port(n.gateway)],
      ["node flows", mark(out, n.nodeFlows, "present", "missing")],
      ["peers", n.peers.map((p) => `${p.nodeIP} ${p.podCIDR} ${mark(out, p.accepted, "accepted", "NOT accepted")}, ${mark(out, p.routed, "routed", "NOT routed")}`).join("; ") || "none"],
      ["segments", n.segments.map((g) => `${g.segment} (${g.pods} pod${g.pods === 1 ? "" : "s"}${g.flow ? "" : ", flow MISSING"})`).join(", ") || "none"],
      ["pods", `${n.pods.total} (${mark(out, n.pods.healthy === n.pods.total, `${n.pods.healthy} healthy`, `${n.pods.healthy} healthy`)})`],
    ];
    pairs(out, rows, "  ");
  }
  if (r.agent) {
    out.line();
    const a = r.agent;
    pairs(out, [["agent", a.running ? `${mark(out, a.ready, "ready", "NOT ready")} on ${a.listen}` : `not running (nothing on ${a.listen})`]], "");
  }
  out.line();
  for (const w of r.warnings) out.line(paint(out, "warn", `warning: ${w}`));
  for (const p of r.problems) out.line(paint(out, "bad", `problem: ${p}`));
  out.line(r.healthy ? paint(out, "ok", "healthy") : paint(out, "bad", "NOT healthy"));
}

function builder(y: Argv<object>) {
  return nodeFlags(y)
    .option("agent-listen", { type: "string", default: "127.0.0.1:9109", describe: "where ovsplane-agent serves /readyz" })
    .example("$0 status", "is this node healthy? (exit code 0 only when it is)")
    .example("$0 status --network podnet --json", "one network's status as JSON");
}

/** The `status` command. */
export const statusCommand = {
  command: "status",
  describe: "check OVS, the bridge, its shared ports, the conflist, peers, segments and pods (changes nothing; exit 0 only when healthy)",
  builder,
  handler: (a: Awaited<ReturnType<typeof builder>["argv"]>) =>
    guardAsync(async () => {
      const r = await collectStatus(a.confDir, a.network, a.agentListen);
      report(a.json, r, (out) => printStatus(out, r));
      return r.healthy ? 0 : 1;
    }),
};
