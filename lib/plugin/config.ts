// Parsing and validation of the ovsplane network configuration (pure: no host access).
import { dirname } from "node:path";
import { parseEndpoint } from "../ovs/endpoint.ts";
import { invalidConfig, invalidEnv } from "../cni/errors.ts";
import { cidrFirst, cidrLast, parseCidr, parseV4Range, v4Text } from "../net/ip.ts";
import type { CniRequest, NetConf } from "../cni/types.ts";
import { routedRanges } from "../dataplane/hoststate.ts";

/** A static remote node. */
export interface Peer {
  nodeIP: string;
  podCIDR: string;
}

/** The validated configuration ovsplane acts on. */
export interface OvsplaneConfig {
  name: string;
  bridge: string;
  datapathType: "system" | "netdev";
  ovsdbSocket: string;
  ofSocket: string;
  segment: number;
  tunnel: { localIP?: string; dstPort: number };
  peers: Peer[];
  mtu?: number;
  ipamType: string;
  /** The node's pod ranges, as far as the IPAM config names them. */
  podCIDRs: string[];
  /** Segments whose pods reach, and are reached by, pods of every segment (cluster DNS, kube-system). */
  globalSegments: number[];
  /** Masquerade pod traffic that leaves the cluster's pod ranges with the node's address. */
  masquerade: boolean;
  /** The cluster's pod ranges, when given (else the node's range and its peers'). */
  clusterCIDRs?: string[];
  /** What the node routes through the gateway to other nodes' pods (hoststate's routedRanges), worked out with the peers. */
  peerRoutes: string[];
  /** The CNI call log's path as configured (one JSON line per call): absent = DEFAULTS.logFile, `""` = no log. */
  logFile?: string;
  /** Agent mode (present only then): ovsplane-agent owns node-wide state and reports namespaces' segments in stateDir. */
  agent?: AgentConfig;
}

/** The `agent` field: where ovsplane-agent keeps the state the plugin reads (segments.json). */
export interface AgentConfig {
  /** Absolute path of the agent's state directory. */
  stateDir: string;
}

/** Defaults of the configuration reference. */
export const DEFAULTS = {
  bridge: "br-int",
  datapathType: "system",
  ovsdbSocket: "unix:/var/run/openvswitch/db.sock",
  segment: 1,
  dstPort: 4789,
  logFile: "/var/log/ovsplane/cni.log",
} as const;

/** Largest VXLAN network identifier. */
export const MAX_VNI = 16777215;

const IFNAME_RE = /^[a-zA-Z0-9_.\-]{1,15}$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** True for a dotted-quad IPv4 address. */
export function isIPv4(s: unknown): s is string {
  return typeof s === "string" && IPV4_RE.test(s);
}

function str(conf: NetConf, key: string, dflt: string): string {
  const v = conf[key];
  if (v === undefined) return dflt;
  if (typeof v !== "string" || v === "") throw invalidConfig(key, v, "must be a non-empty string");
  return v;
}

function endpoint(field: string, v: string): string {
  const e = parseEndpoint(field, v);
  if ("path" in e && !e.path.startsWith("/")) throw invalidConfig(field, v, "a unix: endpoint needs an absolute path");
  return v;
}

/** Parses a segment number (VNI) from a config or CNI_ARGS value. */
export function parseSegment(field: string, v: unknown): number {
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_VNI) {
    if (field === "OVSPLANE_SEGMENT") throw invalidEnv("CNI_ARGS", `OVSPLANE_SEGMENT=${String(v)}`, `segment must be an integer 1..${MAX_VNI}`);
    throw invalidConfig(field, v, `must be an integer 1..${MAX_VNI} (a VXLAN VNI)`);
  }
  return n;
}

/** The subnets an IPAM config of the host-local shape names (ranges or legacy subnet). */
export function ipamSubnets(ipam: Record<string, unknown>): { field: string; subnet: string }[] {
  const out: { field: string; subnet: string }[] = [];
  if (Array.isArray(ipam.ranges)) {
    ipam.ranges.forEach((set, i) => {
      if (!Array.isArray(set)) return;
      set.forEach((r, j) => {
        const s = (r as { subnet?: unknown } | null)?.subnet;
        if (typeof s === "string") out.push({ field: `ipam.ranges[${i}][${j}].subnet`, subnet: s });
      });
    });
  } else if (typeof ipam.subnet === "string") {
    out.push({ field: "ipam.subnet", subnet: ipam.subnet });
  }
  return out;
}

/** A peer's pod range as numbers, for overlap checks without parsing again. */
interface PeerRange {
  i: number;
  first: number;
  last: number;
}

function parsePeers(v: unknown): { peers: Peer[]; ranges: PeerRange[] } {
  if (v === undefined) return { peers: [], ranges: [] };
  if (!Array.isArray(v)) throw invalidConfig("peers", v, "must be a list of {nodeIP, podCIDR}");
  const ranges: PeerRange[] = [];
  const peers = v.map((p, i) => {
    const o = (p ?? {}) as Record<string, unknown>;
    if (!isIPv4(o.nodeIP)) throw invalidConfig(`peers[${i}].nodeIP`, o.nodeIP, "must be an IPv4 address");
    const r = parseV4Range(String(o.podCIDR));
    if (!r) {
      let cidr;
      try {
        cidr = parseCidr(String(o.podCIDR));
      } catch (e) {
        throw invalidConfig(`peers[${i}].podCIDR`, o.podCIDR, (e as Error).message);
      }
      throw invalidConfig(`peers[${i}].podCIDR`, o.podCIDR, cidr.family !== 4 ? "IPv6 is not supported by the dataplane yet" : "not a dotted-quad IPv4 CIDR");
    }
    ranges.push({ i, first: r.first, last: r.last });
    return { nodeIP: o.nodeIP, podCIDR: `${v4Text(r.first)}/${r.prefix}` };
  });
  // Two peer flows with overlapping nw_dst at one priority would silently replace or shadow each other.
  // Sorted by first address, a range overlaps an earlier one only if it starts before the widest earlier
  // one ends: O(n log n), so a conflist of 1,000 peers parses in milliseconds.
  const sorted = [...ranges].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : a.i - b.i));
  let widest: PeerRange | undefined;
  for (const r of sorted) {
    if (widest && r.first <= widest.last) {
      const [i, j] = widest.i < r.i ? [widest.i, r.i] : [r.i, widest.i];
      throw invalidConfig(`peers[${j}].podCIDR`, peers[j]!.podCIDR, `overlaps peers[${i}].podCIDR ${peers[i]!.podCIDR}`);
    }
    if (!widest || r.last > widest.last) widest = r;
  }
  return { peers, ranges };
}

/** IPv4 CIDRs from a string or a list of them (canonical network/prefix). */
function parseCidrs(field: string, v: unknown): string[] {
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || !list.length) throw invalidConfig(field, v, "must be an IPv4 CIDR or a non-empty list of them");
  return list.map((x, i) => {
    let c;
    try {
      c = parseCidr(String(x));
    } catch (e) {
      throw invalidConfig(Array.isArray(v) ? `${field}[${i}]` : field, x, (e as Error).message, e);
    }
    if (c.family !== 4) throw invalidConfig(field, x, "IPv6 is not supported by the dataplane yet");
    return `${c.network}/${c.prefix}`;
  });
}

/** The node-wide options of the Kubernetes network model: global segments, masquerade, cluster ranges. */
function parseClusterOptions(conf: NetConf): Pick<OvsplaneConfig, "globalSegments" | "masquerade" | "clusterCIDRs"> {
  const g = conf.globalSegments ?? [];
  if (!Array.isArray(g)) throw invalidConfig("globalSegments", g, "must be a list of segments (VNIs)");
  const globalSegments = [...new Set(g.map((x, i) => parseSegment(`globalSegments[${i}]`, x)))];
  const masquerade = conf.masquerade ?? true;
  if (typeof masquerade !== "boolean") throw invalidConfig("masquerade", masquerade, "must be true or false");
  const out: Pick<OvsplaneConfig, "globalSegments" | "masquerade" | "clusterCIDRs"> = { globalSegments, masquerade };
  if (conf.clusterCIDR !== undefined) out.clusterCIDRs = parseCidrs("clusterCIDR", conf.clusterCIDR);
  return out;
}

/** The `agent` object: `{ "stateDir": "<absolute path>" }` (code 7 otherwise). */
function parseAgent(v: unknown): AgentConfig {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalidConfig("agent", v, 'must be an object {"stateDir": "<absolute path>"}');
  const dir = (v as Record<string, unknown>).stateDir;
  if (typeof dir !== "string" || !dir.startsWith("/")) throw invalidConfig("agent.stateDir", dir, "must be an absolute path");
  return { stateDir: dir };
}

/** The cluster's pod ranges: clusterCIDR when given, else this node's ranges and its peers'. */
export function clusterRanges(cfg: OvsplaneConfig): string[] {
  return cfg.clusterCIDRs ?? [...cfg.podCIDRs, ...cfg.peers.map((p) => p.podCIDR)];
}

/** Validates the network configuration of a request; throws code 7 naming the bad field. */
export function parseConfig(conf: NetConf): OvsplaneConfig {
  const bridge = str(conf, "bridge", DEFAULTS.bridge);
  if (!IFNAME_RE.test(bridge)) throw invalidConfig("bridge", bridge, "must be 1-15 characters of [a-zA-Z0-9_.-]");
  const datapathType = str(conf, "datapathType", DEFAULTS.datapathType);
  if (datapathType !== "system" && datapathType !== "netdev") {
    throw invalidConfig("datapathType", datapathType, 'must be "system" or "netdev"');
  }
  const ovsdbSocket = endpoint("ovsdbSocket", str(conf, "ovsdbSocket", DEFAULTS.ovsdbSocket));
  let ofSocket: string;
  if (conf.ofSocket !== undefined) ofSocket = endpoint("ofSocket", str(conf, "ofSocket", ""));
  else if (ovsdbSocket.startsWith("unix:")) ofSocket = `unix:${dirname(ovsdbSocket.slice(5))}/${bridge}.mgmt`;
  else throw invalidConfig("ofSocket", undefined, "required when ovsdbSocket is tcp:");
  const segment = conf.segment === undefined ? DEFAULTS.segment : parseSegment("segment", conf.segment);
  const t = (conf.tunnel ?? {}) as Record<string, unknown>;
  if (typeof t !== "object" || Array.isArray(t)) throw invalidConfig("tunnel", conf.tunnel, "must be an object");
  if (t.localIP !== undefined && !isIPv4(t.localIP)) throw invalidConfig("tunnel.localIP", t.localIP, "must be an IPv4 address");
  const dstPort = t.dstPort === undefined ? DEFAULTS.dstPort : t.dstPort;
  if (typeof dstPort !== "number" || !Number.isInteger(dstPort) || dstPort < 1 || dstPort > 65535) {
    throw invalidConfig("tunnel.dstPort", dstPort, "must be a UDP port 1..65535");
  }
  const { peers, ranges } = parsePeers(conf.peers);
  if (conf.mtu !== undefined && (typeof conf.mtu !== "number" || !Number.isInteger(conf.mtu) || conf.mtu < 576 || conf.mtu > 65535)) {
    throw invalidConfig("mtu", conf.mtu, "must be an integer 576..65535");
  }
  const ipam = conf.ipam;
  if (!ipam || typeof ipam !== "object" || Array.isArray(ipam)) throw invalidConfig("ipam", ipam, "required (an object with a type)");
  if (typeof ipam.type !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/.test(ipam.type)) {
    throw invalidConfig("ipam.type", ipam.type, "must be a plugin name (no '/')");
  }
  const podCIDRs: string[] = [];
  for (const { field, subnet } of ipamSubnets(ipam)) {
    let c;
    try {
      c = parseCidr(subnet);
    } catch (e) {
      throw invalidConfig(field, subnet, (e as Error).message);
    }
    if (c.family !== 4) throw invalidConfig(field, subnet, "IPv6 ranges are not supported by the ovsplane dataplane yet");
    const [first, last] = [Number(cidrFirst(c).value), Number(cidrLast(c).value)];
    const hit = ranges.find((r) => r.first <= last && first <= r.last);
    if (hit) throw invalidConfig(field, subnet, `overlaps peers[${hit.i}].podCIDR ${peers[hit.i]!.podCIDR}`);
    podCIDRs.push(subnet);
  }
  const out: OvsplaneConfig = {
    name: conf.name,
    bridge,
    datapathType,
    ovsdbSocket,
    ofSocket,
    segment,
    tunnel: { dstPort },
    peers,
    ipamType: ipam.type,
    podCIDRs,
    peerRoutes: [],
    ...parseClusterOptions(conf),
  };
  // On the numbers parsePeers has (ranges[i] is peers[i]'s): parsing 1,000 ranges again cost a cold ADD ~3 ms.
  out.peerRoutes = routedRanges(out.clusterCIDRs ? { peers, clusterCIDRs: out.clusterCIDRs } : { peers }, ranges);
  if (conf.logFile !== undefined && (typeof conf.logFile !== "string" || (conf.logFile !== "" && !conf.logFile.startsWith("/")))) {
    throw invalidConfig("logFile", conf.logFile, 'must be an absolute path, or "" for no call log');
  }
  if (conf.logFile !== undefined) out.logFile = conf.logFile as string;
  if (t.localIP !== undefined) out.tunnel.localIP = t.localIP as string;
  if (conf.mtu !== undefined) out.mtu = conf.mtu as number;
  if (conf.agent !== undefined) {
    out.agent = parseAgent(conf.agent);
    // With the agent, peers come from the Node objects: static ones would never be programmed.
    if (peers.length) throw invalidConfig("peers", conf.peers, "not with agent: ovsplane-agent takes the peers from the Kubernetes API");
    if (conf.peersFile !== undefined) throw invalidConfig("peersFile", conf.peersFile, "not with agent: ovsplane-agent takes the peers from the Kubernetes API");
  }
  return out;
}

/** The segment of this attachment: CNI_ARGS OVSPLANE_SEGMENT over the config's. */
export function segmentOf(req: CniRequest, cfg: OvsplaneConfig): number {
  const v = req.args.OVSPLANE_SEGMENT;
  return v === undefined ? cfg.segment : parseSegment("OVSPLANE_SEGMENT", v);
}
