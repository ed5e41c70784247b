// What ovsplanectl reads of a node: the ovsplane networks in the CNI conf dir, and OVS state (ports, flows) per bridge.
import { readdirSync, readFileSync } from "node:fs";
import { parsePolicyReport, POLICIES_FILE, type PolicyReport } from "../policy/report.ts";
import { join } from "node:path";
import type { Argv } from "yargs";
import { messageOf } from "../cni/errors.ts";
import type { NetConf } from "../cni/types.ts";
import { parseConfig, type OvsplaneConfig } from "../plugin/config.ts";
import { withPeersFile } from "../plugin/peersfile.ts";
import { connect, setToArray } from "../ovs/ovsdb.ts";
import { OpenFlowConnection } from "../ovs/openflow-conn.ts";
import type { FlowEntry } from "../ovs/openflow.ts";
import { flowKey, renderFlow } from "../ovs/flow-text.ts";
import { listPorts, findPort, type TaggedPort } from "../node/bridge.ts";
import { MAGIC_MASK, COOKIE_MAGIC, CookieKind, parseCookie } from "../dataplane/pipeline.ts";
import { ipv4Of, PortRole, Tag, type Attachment } from "../dataplane/attachment.ts";
import { attachmentId, gatewayMac, networkId } from "../dataplane/names.ts";
import { podFlows } from "../dataplane/builders.ts";
import { parseIpamConfig, type Pool } from "../ipam/config.ts";
import { LeaseStore, type Lease } from "../ipam/store.ts";
import { last } from "./common.ts";

/** Default CNI configuration directory. */
export const DEFAULT_CONF_DIR = "/etc/cni/net.d";

/** One ovsplane network found in a conflist (or .conf) file, with its plugin config as the runtime would send it. */
export interface NetworkConf {
  /** The file it was found in. */
  file: string;
  /** The plugin's config object as a runtime sends it on stdin (name and cniVersion injected). */
  conf: NetConf;
  cfg: OvsplaneConfig;
}

/** A conf file that could not be used, and why. */
export interface ConfProblem {
  file: string;
  why: string;
}

/**
 * The ovsplane networks of a CNI conf dir, in the order a runtime reads the files (lexical); files
 * that are not JSON or whose ovsplane plugin config is invalid are reported as problems.
 */
export function loadNetworks(confDir: string = DEFAULT_CONF_DIR): { networks: NetworkConf[]; problems: ConfProblem[]; files: string[] } {
  let files: string[] = [];
  try {
    files = readdirSync(confDir).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
  } catch (e) {
    return { networks: [], problems: [{ file: confDir, why: messageOf(e) }], files };
  }
  const networks: NetworkConf[] = [];
  const problems: ConfProblem[] = [];
  for (const f of files) {
    const file = join(confDir, f);
    let doc: Record<string, any>;
    try {
      doc = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      problems.push({ file, why: `not JSON: ${messageOf(e)}` });
      continue;
    }
    const plugins: Record<string, any>[] = Array.isArray(doc.plugins) ? doc.plugins : [doc];
    for (const p of plugins) {
      if (p?.type !== "ovsplane") continue;
      const conf = { ...p, name: doc.name, cniVersion: doc.cniVersion } as NetConf;
      try {
        networks.push({ file, conf, cfg: parseConfig(withPeersFile(conf)) });
      } catch (e) {
        problems.push({ file, why: messageOf(e) });
      }
    }
  }
  return { networks, problems, files };
}

/** A pod port of ours with its OpenFlow port number. */
export type PortState = TaggedPort & { ofport?: number };

/** What OVS says about one bridge: reachability of both daemons, the bridge's rows, ovsplane's ports and flows. */
export interface BridgeState {
  bridge: string;
  ovsdb: { ok: boolean; error?: string };
  vswitchd: { ok: boolean; error?: string };
  exists: boolean;
  datapathType?: string;
  /** Every pod port of any ovsplane network on this OVSDB. */
  ports: PortState[];
  /** The shared ports (tunnel, gateway) by name, with their OpenFlow numbers. */
  shared: PortState[];
  /** Every flow with an ovsplane cookie, with counters. */
  flows: FlowEntry[];
  /** Open_vSwitch's ovs_version and db_version, when OVSDB answered. */
  versions: { ovs?: string; db?: string };
}

/** Reads one bridge's state for a network's config; never throws (failures are in the result). */
export async function readBridge(cfg: OvsplaneConfig, timeoutMs = 2000): Promise<BridgeState> {
  const out: BridgeState = { bridge: cfg.bridge, ovsdb: { ok: false }, vswitchd: { ok: false }, exists: false, ports: [], shared: [], flows: [], versions: {} };
  try {
    const c = await connect(cfg.ovsdbSocket, { timeoutMs });
    try {
      out.ovsdb.ok = true;
      const [br, ovs] = await c.transact([
        { op: "select", table: "Bridge", where: [["name", "==", cfg.bridge]], columns: ["datapath_type"] },
        { op: "select", table: "Open_vSwitch", where: [], columns: ["ovs_version", "db_version"] },
      ]);
      const [ovsVersion, dbVersion] = [setToArray(ovs.rows[0]?.ovs_version)[0], setToArray(ovs.rows[0]?.db_version)[0]];
      if (typeof ovsVersion === "string") out.versions.ovs = ovsVersion;
      if (typeof dbVersion === "string") out.versions.db = dbVersion;
      out.exists = br.rows.length > 0;
      if (out.exists) out.datapathType = String(br.rows[0].datapath_type || "system");
      const ports = await listPorts(c);
      out.ports = await Promise.all(ports.map(async (p) => ({ ...p, ...((await findPort(c, p.name)) ?? {}) })));
      for (const name of ["ovsplane-gw", `ovsp-vxlan${cfg.tunnel.dstPort === 4789 ? "" : cfg.tunnel.dstPort}`.slice(0, 15)]) {
        const p = await findPort(c, name);
        if (p) out.shared.push(p);
      }
    } finally {
      c.close();
    }
  } catch (e) {
    out.ovsdb.error = messageOf(e);
  }
  try {
    const sw = await OpenFlowConnection.connect(cfg.ofSocket, { timeoutMs });
    try {
      out.vswitchd.ok = true;
      out.flows = await sw.dumpFlows({ cookie: COOKIE_MAGIC << 48n, mask: MAGIC_MASK });
    } finally {
      sw.close();
    }
  } catch (e) {
    out.vswitchd.error = messageOf(e);
  }
  return out;
}

/** The flags every inspecting command takes. */
export interface NodeFlags {
  confDir: string;
  network?: string;
  json: boolean;
}

/** Adds --conf-dir, --network and --json to a command's builder. */
export function nodeFlags<T>(y: Argv<T>) {
  return y
    .option("conf-dir", { type: "string", coerce: last, default: DEFAULT_CONF_DIR, describe: "where the runtime finds conflists" })
    .option("network", { type: "string", coerce: last, describe: "only this network (when the conf dir has several)" })
    .option("json", { type: "boolean", default: false, describe: "one JSON document instead of a table" });
}

/** The networks a command looks at: the one --network names, else all; throws when there is none. */
export function selectNetworks(found: readonly NetworkConf[], name?: string): NetworkConf[] {
  const picked = name === undefined ? [...found] : found.filter((n) => n.cfg.name === name);
  if (!picked.length) {
    const have = found.map((n) => n.cfg.name).join(", ") || "none";
    throw new Error(name === undefined ? "no ovsplane network in the conf dir" : `no ovsplane network ${JSON.stringify(name)} (found: ${have})`);
  }
  return picked;
}

/** The identity of a bridge across networks (two networks on one OVSDB and bridge share it). */
export function bridgeKey(cfg: OvsplaneConfig): string {
  return `${cfg.ovsdbSocket} ${cfg.bridge}`;
}

/** Reads each distinct bridge of the networks once, by bridgeKey. */
export async function readBridges(networks: readonly NetworkConf[]): Promise<Map<string, BridgeState>> {
  const out = new Map<string, BridgeState>();
  for (const n of networks) if (!out.has(bridgeKey(n.cfg))) out.set(bridgeKey(n.cfg), await readBridge(n.cfg));
  return out;
}

/** A network's lease store as read from disk. */
export interface NetworkLeases {
  network: string;
  /** `<dataDir>/<network>`, when the IPAM config has a host-local shaped store. */
  dir?: string;
  pools: Pool[][];
  leases: Lease[];
  /** Why the leases could not be read (another IPAM type, a bad IPAM config, an unreadable dir). */
  error?: string;
}

/** The leases of a network whose IPAM is ovsplane-ipam or host-local (same config, same files); never throws. */
export async function readLeases(n: NetworkConf): Promise<NetworkLeases> {
  const out: NetworkLeases = { network: n.cfg.name, pools: [], leases: [] };
  if (!["ovsplane-ipam", "host-local"].includes(n.cfg.ipamType)) return { ...out, error: `IPAM type ${n.cfg.ipamType} keeps no lease files here` };
  try {
    const ipam = parseIpamConfig(n.conf);
    const store = new LeaseStore({ dataDir: ipam.dataDir, network: ipam.network });
    out.dir = store.dir;
    out.pools = ipam.rangeSets;
    out.leases = await store.leases();
  } catch (e) {
    out.error = messageOf(e);
  }
  return out;
}

/** The lease an attachment holds: its IPv4 address's file, written by its container and interface. */
export function leaseOf(a: Attachment, leases: readonly Lease[]): Lease | undefined {
  const ip = ipv4Of(a);
  return leases.find((l) => l.ip.toString() === ip && l.owner?.containerID === a.containerID && (l.owner.ifname ?? a.ifname) === a.ifname);
}

/** The agent's report of the node's NetworkPolicies (policies.json in its state dir), when the network is in agent mode and it wrote one. */
export function readPolicyReport(cfg: OvsplaneConfig): PolicyReport | undefined {
  if (!cfg.agent) return undefined;
  try {
    return parsePolicyReport(readFileSync(join(cfg.agent.stateDir, POLICIES_FILE), "utf8"));
  } catch {
    return undefined;
  }
}

/** Names of the kinds of flow owners, as CookieKind numbers them ("unknown" for a kind we do not know). */
export const OWNER_KINDS = ["node", "segment", "peer", "pod", "gateway", "route", "global", "policy", "service", "unknown"] as const;
/** One of OWNER_KINDS. */
export type OwnerKind = (typeof OWNER_KINDS)[number];

/** What a flow belongs to, named for people (and keyed for grouping). */
export interface FlowOwner {
  kind: OwnerKind;
  /** Stable key of the owner (kind and id), e.g. "segment/100". */
  key: string;
  /** e.g. "pod default/web-1 (ctr abc, eth0)", "route to 10.244.2.0/24 via 198.18.0.2 (network podnet)". */
  name: string;
  network?: string;
  segment?: number;
  peer?: string;
  /** The pod port, for a pod's flows whose port exists. */
  port?: string;
  attachment?: Attachment;
}

/** What flowOwner knows of the node: its pod ports and its networks (to name network ids and peers' ranges). */
export interface OwnerContext {
  ports: readonly PortState[];
  networks: readonly NetworkConf[];
  /** NetworkPolicy names by their verdict cookie (hex), from the agent's policies.json. */
  policies?: Readonly<Record<string, string>>;
}

const ipOf = (n: bigint) => [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join(".");

/** How a pod is named: "default/web-1 (ctr abc, eth0)" (container ID cut to 12). */
export function podLabel(a: Pick<Attachment, "podNamespace" | "podName" | "containerID" | "ifname">): string {
  const ctr = `ctr ${a.containerID.slice(0, 12)}, ${a.ifname}`;
  return a.podName ? `${a.podNamespace ?? "?"}/${a.podName} (${ctr})` : `(${ctr})`;
}

/** Names the owner of a flow from its cookie, the ports' tags and the networks' configs (pure). */
export function flowOwner(cookie: bigint, ctx: OwnerContext): FlowOwner {
  const c = parseCookie(cookie);
  const hex = `0x${cookie.toString(16)}`;
  if (!c) return { kind: "unknown", key: `cookie/${hex}`, name: `not ovsplane's (cookie ${hex})` };
  const netOf = (id: bigint) => {
    const names = [...ctx.networks.map((n) => n.cfg.name), ...ctx.ports.map((p) => p.network ?? "")].filter(Boolean);
    return names.find((n) => networkId(n) === id >> 32n);
  };
  const netName = (id: bigint) => netOf(id) ?? `#${(id >> 32n).toString(16)}`;
  const low = c.id & 0xffffffffn;
  switch (c.kind) {
    case CookieKind.Node:
      return { kind: "node", key: "node", name: "node (pipeline defaults)" };
    case CookieKind.Segment:
      return { kind: "segment", key: `segment/${c.id}`, name: `segment ${c.id}`, segment: Number(c.id) };
    case CookieKind.Peer:
      return { kind: "peer", key: `peer/${ipOf(c.id)}`, name: `peer ${ipOf(c.id)}`, peer: ipOf(c.id) };
    case CookieKind.Gateway: {
      const network = netName(c.id);
      return { kind: "gateway", key: `gateway/${network}`, name: `gateway of network ${network}`, network };
    }
    case CookieKind.Route: {
      const [network, peer] = [netName(c.id), ipOf(low)];
      const cidr = ctx.networks.find((n) => n.cfg.name === network)?.cfg.peers.find((p) => p.nodeIP === peer)?.podCIDR;
      const to = cidr ? `route to ${cidr} via ${peer}` : `route via ${peer}`;
      return { kind: "route", key: `route/${network}/${peer}`, name: `${to} (network ${network})`, network, peer };
    }
    case CookieKind.Global: {
      const network = netName(c.id);
      return { kind: "global", key: `global/${network}/${low}`, name: `global segment ${low} (network ${network})`, network, segment: Number(low) };
    }
    case CookieKind.Pod: {
      const p = ctx.ports.find((x) => x.attachment && attachmentId(x.attachment.network, x.attachment.containerID, x.attachment.ifname) === c.id);
      if (!p?.attachment) return { kind: "pod", key: `pod/${c.id.toString(16)}`, name: `pod without a port (id ${c.id.toString(16)})` };
      const a = p.attachment;
      return { kind: "pod", key: `pod/${c.id.toString(16)}`, name: `pod ${podLabel(a)}`, network: a.network, segment: a.segment, port: p.name, attachment: a };
    }
    case CookieKind.Policy: {
      const role = c.id >> 32n;
      if (role === 2n) {
        const p = ctx.ports.find((x) => x.ofport === Number(low));
        return { kind: "policy", key: `policy/pod/${low}`, name: `policy isolation of ${p?.attachment ? `pod ${podLabel(p.attachment)}` : `port ${low}`}`, ...(p ? { port: p.name } : {}) };
      }
      if (role === 1n) return { kind: "policy", key: `policy/${hex}`, name: `policy ${ctx.policies?.[hex] ?? `#${low.toString(16)}`} (verdicts)` };
      return { kind: "policy", key: "policy/shared", name: "policy rules' shared conjunctive clauses" };
    }
    case CookieKind.Service:
      return { kind: "service", key: `service/${c.id.toString(16)}`, name: `Service #${c.id.toString(16)} (hash of namespace/name: dataplane/services.ts serviceId)` };
    default:
      return { kind: "unknown", key: `cookie/${hex}`, name: `unknown kind ${c.kind} (cookie ${hex})` };
  }
}

/** How a pod's flows on the bridge compare with what the builders make for it. */
export interface PodFlowState {
  ok: boolean;
  want: number;
  have: number;
  /** The wanted flows that are absent, as ovs-ofctl text. */
  missing: string[];
  /** Flows present under the pod's cookie but different from (or beyond) the wanted ones. */
  unexpected: string[];
}

/** Compares a pod port's flows with podFlows() for it; without an OpenFlow port or gateway every flow is missing. */
export function podFlowState(port: PortState, gatewayPort: number | undefined, bridge: string, flows: readonly FlowEntry[]): PodFlowState {
  const a = port.attachment;
  const ip = a && ipv4Of(a);
  if (!a || !ip || port.ofport === undefined || port.ofport <= 0 || gatewayPort === undefined) {
    return { ok: false, want: 0, have: 0, missing: ["(cannot build: port without attachment tags, IPv4, OpenFlow port or gateway)"], unexpected: [] };
  }
  const id = attachmentId(a.network, a.containerID, a.ifname);
  const want = podFlows({ id, port: port.ofport, ip, mac: a.mac, segment: a.segment }, { gateway: gatewayPort, gatewayMAC: gatewayMac(bridge) });
  const have = flows.filter((f) => f.flow.cookie === want[0]!.cookie).map((f) => f.flow);
  const byKey = new Map(have.map((f) => [flowKey(f), f]));
  const missing: string[] = [];
  const unexpected: string[] = [];
  for (const w of want) {
    const h = byKey.get(flowKey(w));
    if (!h) missing.push(renderFlow(w));
    else if (renderFlow(h) !== renderFlow(w)) unexpected.push(renderFlow(h));
    byKey.delete(flowKey(w));
  }
  unexpected.push(...[...byKey.values()].map(renderFlow));
  return { ok: !missing.length && !unexpected.length, want: want.length, have: have.length, missing, unexpected };
}

/** The OpenFlow port of a shared port by role (tunnel or gateway), when it exists. */
export function sharedPort(b: BridgeState, role: (typeof PortRole)[keyof typeof PortRole]): PortState | undefined {
  return b.shared.find((p) => p.externalIds[Tag.Role] === role);
}
