// ovsplanectl doctor: reads the node once (conf dir, sysctl, OVS, links, leases, pods' offloads) and runs the pure checks.
import { existsSync, readFileSync } from "node:fs";
import { PortRole } from "../../dataplane/attachment.ts";
import type { Argv, CommandModule } from "yargs";
import { ipJson, netnsExists } from "../../host/netns.ts";
import { run } from "../../host/exec.ts";
import { defaultRouteInterface } from "../../host/underlay.ts";
import { bridgeKey, loadNetworks, nodeFlags, podFlowState, readBridges, readLeases, sharedPort, type BridgeState, type NetworkConf, type NodeFlags } from "../node-state.ts";
import { guardAsync, json, outTo, paint, table, type Out } from "../output.ts";
import { confFindings, forwardFinding, healthy, mtuFindings, offloadFindings, ovsFindings, podFlowFindings, residueFindings, Verdict, type Finding, type OffloadFact } from "../doctor/checks.ts";
import { findResidue, type Residue, type VethFact } from "../doctor/residue.ts";

/** One network as doctor (and gc) read it. */
export interface NetworkFacts {
  net: NetworkConf;
  bridge: BridgeState;
  residue: Residue;
}

/** What doctor read of the node. */
export interface NodeFacts {
  veths: VethFact[];
  networks: NetworkFacts[];
  findings: Finding[];
}

interface AddrJson {
  ifname: string;
  mtu: number;
  addr_info?: { local: string }[];
}

/** The uplink of a network: the interface holding tunnel.localIP, else the default route's. */
async function uplinkOf(n: NetworkConf): Promise<{ uplink?: { ifname: string; mtu: number }; uplinkError?: string }> {
  try {
    const links = await ipJson<AddrJson[]>(["-4", "addr", "show"]);
    const ip = n.cfg.tunnel.localIP;
    const dev = ip ? undefined : defaultRouteInterface();
    const l = links.find((x) => (ip ? x.addr_info?.some((a) => a.local === ip) : x.ifname === dev));
    if (l) return { uplink: { ifname: l.ifname, mtu: l.mtu } };
    return { uplinkError: ip ? `no interface holds ${ip}` : "no IPv4 default route" };
  } catch (e) {
    return { uplinkError: e instanceof Error ? e.message : String(e) };
  }
}

/** tx-checksumming of a pod interface, read with ethtool inside its netns. */
async function offloadOf(pod: string, netns: string, ifname: string): Promise<OffloadFact> {
  const r = await run(["nsenter", `--net=${netns}`, "ethtool", "-k", ifname], { allowFail: true, timeoutMs: 5000 }).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message }));
  const m = /^tx-checksumming:\s*(on|off)/m.exec(r.stdout);
  if (r.code === 0 && m) return { pod, ifname, netns, tx: m[1] as "on" | "off" };
  return { pod, ifname, netns, error: (r.stderr || r.stdout).trim() || `exit ${r.code}` };
}

/** Reads the node for the networks of a conf dir (all, or the one named) and runs every check. */
export async function examine(confDir: string, network?: string): Promise<NodeFacts> {
  const { networks: all, problems, files } = loadNetworks(confDir);
  const findings = confFindings(confDir, files, problems, all.map((n) => n.file));
  const nets = network === undefined ? all : all.filter((n) => n.cfg.name === network);
  if (network !== undefined && !nets.length) throw new Error(`no ovsplane network ${JSON.stringify(network)} in ${confDir}`);
  findings.push(forwardFinding(readText("/proc/sys/net/ipv4/ip_forward")));
  const veths = await ipJson<VethFact[]>(["link", "show", "type", "veth"]).catch(() => [] as VethFact[]);
  const bridges = await readBridges(nets);
  const out: NetworkFacts[] = [];
  const seenBridge = new Set<string>();
  for (const net of nets) {
    const cfg = net.cfg;
    const bridge = bridges.get(bridgeKey(cfg))!;
    if (!seenBridge.has(bridgeKey(cfg))) {
      seenBridge.add(bridgeKey(cfg));
      findings.push(...ovsFindings({ network: cfg.name, bridge: cfg.bridge, configuredDatapath: cfg.datapathType, ovsdb: bridge.ovsdb, vswitchd: bridge.vswitchd, exists: bridge.exists, ...(bridge.datapathType ? { datapathType: bridge.datapathType } : {}), kernelModule: existsSync("/sys/module/openvswitch") }));
    }
    const leases = await readLeases(net);
    const leaseFacts = leases.error ? undefined : leases.leases.map((l) => ({ ip: l.ip.toString(), mtimeMs: l.mtimeMs, ...(l.owner ? { owner: l.owner } : {}) }));
    const residue = findResidue(cfg.name, bridge.ports, veths, leaseFacts, bridge.ovsdb.ok && bridge.vswitchd.ok ? bridge.flows.map((f) => f.flow.cookie) : []);
    out.push({ net, bridge, residue });
    const byName = new Map(veths.map((v) => [v.ifname, v]));
    const pods = bridge.ports.filter((p) => p.network === cfg.name && p.attachment && byName.has(p.name));
    const label = (p: (typeof pods)[number]) => p.attachment!.podName ? `${p.attachment!.podNamespace ?? ""}/${p.attachment!.podName}` : `${p.attachment!.containerID}/${p.attachment!.ifname}`;
    findings.push(...mtuFindings({ network: cfg.name, ...(await uplinkOf(net)), ...(cfg.mtu ? { configured: cfg.mtu } : {}), veths: pods.map((p) => ({ ifname: p.name, pod: label(p), ...(byName.get(p.name)?.mtu ? { mtu: byName.get(p.name)!.mtu! } : {}) })) }));
    const gw = sharedPort(bridge, PortRole.Gateway)?.ofport;
    findings.push(...podFlowFindings(cfg.name, bridge.vswitchd.ok, pods.map((p) => {
      const st = podFlowState(p, gw, cfg.bridge, bridge.flows);
      return { pod: label(p), want: st.want, have: st.have, missing: st.missing.length, unexpected: st.unexpected.length };
    })));
    const dp = bridge.datapathType ?? cfg.datapathType;
    const withNetns = pods.filter((p) => netnsExists(p.attachment!.netns));
    findings.push(...offloadFindings(cfg.name, dp, await Promise.all(withNetns.map((p) => offloadOf(label(p), p.attachment!.netns, p.attachment!.ifname)))));
    findings.push(...residueFindings(residue));
  }
  return { veths, networks: out, findings };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Prints findings as a table, then the fixes of what failed or warned. */
export function printFindings(out: Out, findings: readonly Finding[]): void {
  const v = (f: Finding) => paint(out, f.verdict === Verdict.Ok ? "ok" : f.verdict === Verdict.Warn ? "warn" : "bad", f.verdict.toUpperCase());
  table(out, ["VERDICT", "CHECK", "DETAIL"], findings.map((f) => [v(f), f.check, f.detail]));
  const fixes = [...new Set(findings.filter((f) => f.fix).map((f) => `  ${f.check}: ${f.fix}`))];
  if (fixes.length) {
    out.line();
    out.line("fixes:");
    fixes.forEach((l) => out.line(l));
  }
  out.line();
  out.line(healthy(findings) ? paint(out, "ok", "healthy") : paint(out, "bad", `${findings.filter((f) => f.verdict === Verdict.Fail).length} problem(s)`));
}

/** The `doctor` command: exit code 1 when any check fails. */
export const doctorCommand: CommandModule<object, NodeFlags> = {
  command: "doctor",
  describe: "check the node for what breaks pods (MTU, offload, ip_forward, conflist, residue, OVS), each with a fix",
  builder: (y: Argv) => nodeFlags(y).example("$0 doctor --json", "the findings as JSON") as unknown as Argv<NodeFlags>,
  handler: (a) =>
    guardAsync(async () => {
      const facts = await examine(a.confDir, a.network);
      const out = outTo();
      if (a.json) json(out, { healthy: healthy(facts.findings), findings: facts.findings, residue: facts.networks.map((n) => n.residue) });
      else printFindings(out, facts.findings);
      return healthy(facts.findings) ? 0 : 1;
    }),
};
