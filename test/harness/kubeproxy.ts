// A faithful stand-in for kube-proxy in iptables mode: the rules it writes (pure), applied to or removed from a SimNode.
import { createHash } from "node:crypto";
import type { ExecOptions, ExecResult } from "../../lib/host/exec.ts";

/** One ready endpoint of a service port (a pod address and its target port). */
export interface KubeProxyEndpoint {
  ip: string;
  port: number;
}

/** One service port as kube-proxy sees it (Service + EndpointSlice, trafficPolicy Cluster, no session affinity). */
export interface KubeProxyService {
  name: string;
  namespace: string;
  /** The service port's name (ServicePort.name); "" or absent for an unnamed single port. */
  portName?: string;
  clusterIP: string;
  port: number;
  protocol: "tcp";
  nodePort?: number;
  endpoints: KubeProxyEndpoint[];
}

/** What kube-proxy is configured with (its flags) and what it watches (the services). */
export interface KubeProxyConfig {
  /** `--cluster-cidr` (the LocalTrafficDetector "ClusterCIDR"); absent = no local-traffic detection. */
  clusterCIDR?: string;
  /** Resolved `--nodeport-addresses`: NodePorts only on these IPs; absent = every local address (addrtype LOCAL). */
  nodeIPs?: string[];
  /** `iptables.localhostNodePorts` (default true, kube-proxy's default; forced false when nodeIPs lack 127.0.0.1). */
  localhostNodePorts?: boolean;
  /** `--iptables-masquerade-bit` (default 14, i.e. mark 0x4000). */
  masqueradeBit?: number;
  /** Whether iptables has MASQUERADE --random-fully (iptables >= 1.6.2; default true, as here). */
  randomFully?: boolean;
  /** sysctl nf_conntrack_tcp_be_liberal != 0: kube-proxy then writes no INVALID drop (default false). */
  conntrackTCPLiberal?: boolean;
  /** NAT chains already on the node: stale service chains among them are flushed and deleted, as on a full sync. */
  existingNatChains?: string[];
  services: KubeProxyService[];
}

/** A rule kube-proxy ensures outside iptables-restore (EnsureChain + EnsureRule(Prepend): `-C`, else `-I`). */
export interface JumpRule {
  table: "filter" | "nat";
  /** The built-in chain holding the jump (PREROUTING, OUTPUT, ...). */
  chain: string;
  /** The chain jumped to. */
  target: string;
  /** The rule's arguments after `-I <chain>`, target included. */
  args: string[];
}

/** Everything one kube-proxy full sync writes. */
export interface KubeProxyRules {
  /** Jump rules from the built-in chains, in the order kube-proxy ensures them (each prepended). */
  jumps: JumpRule[];
  /** The `iptables-restore --noflush --counters` input: `*filter ... COMMIT` then `*nat ... COMMIT`. */
  restore: string;
}

/**
 * Masquerade mark of a bit, formatted as kube-proxy does (Go `%#08x` pads the digits to 8:
 * "0x00004000" for bit 14; iptables-save shows it back as 0x4000).
 */
export function masqueradeMark(bit = 14): string {
  return `0x${(1 << bit).toString(16).padStart(8, "0")}`;
}

const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
function base32(buf: Buffer): string {
  let bits = 0, value = 0, out = "";
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

function hash16(s: string): string {
  return base32(createHash("sha256").update(s).digest()).slice(0, 16);
}

/** `ns/name` or `ns/name:port`: proxy.ServicePortName.String(). */
export function servicePortName(s: Pick<KubeProxyService, "namespace" | "name" | "portName">): string {
  return `${s.namespace}/${s.name}${s.portName ? `:${s.portName}` : ""}`;
}

/** KUBE-SVC-<16 base32 chars of sha256(servicePortName + protocol)>. */
export function serviceChainName(s: KubeProxyService): string {
  return `KUBE-SVC-${hash16(servicePortName(s) + s.protocol)}`;
}

/** KUBE-EXT-<same hash as the SVC chain>: external (NodePort) traffic. */
export function externalChainName(s: KubeProxyService): string {
  return `KUBE-EXT-${hash16(servicePortName(s) + s.protocol)}`;
}

/** KUBE-SEP-<16 base32 chars of sha256(servicePortName + protocol + "ip:port")>. */
export function endpointChainName(s: KubeProxyService, ep: KubeProxyEndpoint): string {
  return `KUBE-SEP-${hash16(servicePortName(s) + s.protocol + `${ep.ip}:${ep.port}`)}`;
}

const SERVICE_CHAIN = /^KUBE-(SVC|SVL|EXT|FW|SEP)-/;
const q = (s: string): string => `"${s}"`;

/** The jump rules kube-proxy ensures (iptablesJumpChains, then kubelet's KUBE-FIREWALL jumps). */
export function kubeProxyJumps(): JumpRule[] {
  const jump = (table: JumpRule["table"], chain: string, target: string, comment: string, extra: string[] = []): JumpRule =>
    ({ table, chain, target, args: [...extra, ...(comment ? ["-m", "comment", "--comment", comment] : []), "-j", target] });
  const ctNew = ["-m", "conntrack", "--ctstate", "NEW"];
  return [
    jump("filter", "INPUT", "KUBE-EXTERNAL-SERVICES", "kubernetes externally-visible service portals", ctNew),
    jump("filter", "FORWARD", "KUBE-EXTERNAL-SERVICES", "kubernetes externally-visible service portals", ctNew),
    jump("filter", "INPUT", "KUBE-NODEPORTS", "kubernetes health check service ports"),
    jump("filter", "FORWARD", "KUBE-SERVICES", "kubernetes service portals", ctNew),
    jump("filter", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", ctNew),
    jump("filter", "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules"),
    jump("filter", "INPUT", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", ctNew),
    jump("filter", "OUTPUT", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", ctNew),
    jump("filter", "FORWARD", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", ctNew),
    jump("nat", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals"),
    jump("nat", "PREROUTING", "KUBE-SERVICES", "kubernetes service portals"),
    jump("nat", "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules"),
    jump("filter", "INPUT", "KUBE-FIREWALL", ""),
    jump("filter", "OUTPUT", "KUBE-FIREWALL", ""),
  ];
}

/**
 * The rules of one kube-proxy (iptables mode, IPv4) full sync, in the order proxier.go writes them.
 * Services are taken in the order (namespace/name:port) sorted, where kube-proxy walks a Go map.
 * Not modelled: nfacct counters (written only when the nfacct counters exist), session affinity,
 * external/LoadBalancer IPs, Local traffic policies, large-cluster mode.
 */
export function kubeProxyRules(cfg: KubeProxyConfig): KubeProxyRules {
  const mark = masqueradeMark(cfg.masqueradeBit);
  const localhostNodePorts = (cfg.localhostNodePorts ?? true) && (!cfg.nodeIPs || cfg.nodeIPs.some((ip) => ip.startsWith("127.")));
  const filterChains = ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL"];
  const natChains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"];
  const filterRules: string[] = [];
  const natRules: string[] = [
    `-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`,
    `-A KUBE-POSTROUTING -m comment --comment ${q("kubernetes service traffic requiring SNAT")} -j MASQUERADE${cfg.randomFully ?? true ? " --random-fully" : ""}`,
    `-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`,
  ];
  if (localhostNodePorts) {
    filterChains.push("KUBE-FIREWALL");
    filterRules.push(`-A KUBE-FIREWALL -m comment --comment ${q("block incoming localnet connections")} -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`);
  }
  const active = new Set<string>();
  const services = [...cfg.services].sort((a, b) => servicePortName(a).localeCompare(servicePortName(b)));
  for (const svc of services) {
    const name = servicePortName(svc);
    const p = svc.protocol;
    const svcChain = serviceChainName(svc);
    const extChain = externalChainName(svc);
    const match = `-m ${p} -p ${p} -d ${svc.clusterIP} --dport ${svc.port}`;
    const hasEndpoints = svc.endpoints.length > 0;
    if (hasEndpoints) {
      natRules.push(`-A KUBE-SERVICES -m comment --comment ${q(`${name} cluster IP`)} ${match} -j ${svcChain}`);
    } else {
      filterRules.push(`-A KUBE-SERVICES -m comment --comment ${q(`${name} has no endpoints`)} ${match} -j REJECT`);
    }
    if (svc.nodePort) {
      if (hasEndpoints) {
        natRules.push(`-A KUBE-NODEPORTS -m comment --comment ${name} -m ${p} -p ${p} --dport ${svc.nodePort} -j ${extChain}`);
      } else {
        filterRules.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${q(`${name} has no endpoints`)} -m addrtype --dst-type LOCAL -m ${p} -p ${p} --dport ${svc.nodePort} -j REJECT`);
      }
    }
    if (!hasEndpoints) continue;
    if (cfg.clusterCIDR) {
      natRules.push(`-A ${svcChain} -m comment --comment ${q(`${name} cluster IP`)} ${match} ! -s ${cfg.clusterCIDR} -j KUBE-MARK-MASQ`);
    }
    if (svc.nodePort) {
      natChains.push(extChain);
      active.add(extChain);
      natRules.push(`-A ${extChain} -m comment --comment ${q(`masquerade traffic for ${name} external destinations`)} -j KUBE-MARK-MASQ`);
      natRules.push(`-A ${extChain} -j ${svcChain}`);
    }
    natChains.push(svcChain);
    active.add(svcChain);
    const n = svc.endpoints.length;
    svc.endpoints.forEach((ep, i) => {
      const stat = i < n - 1 ? ` -m statistic --mode random --probability ${(1 / (n - i)).toFixed(10)}` : "";
      natRules.push(`-A ${svcChain} -m comment --comment ${q(`${name} -> ${ep.ip}:${ep.port}`)}${stat} -j ${endpointChainName(svc, ep)}`);
    });
    for (const ep of svc.endpoints) {
      const sep = endpointChainName(svc, ep);
      natChains.push(sep);
      active.add(sep);
      natRules.push(`-A ${sep} -m comment --comment ${name} -s ${ep.ip} -j KUBE-MARK-MASQ`);
      natRules.push(`-A ${sep} -m comment --comment ${name} -m ${p} -p ${p} -j DNAT --to-destination ${ep.ip}:${ep.port}`);
    }
  }
  for (const chain of cfg.existingNatChains ?? []) {
    if (!SERVICE_CHAIN.test(chain) || active.has(chain)) continue;
    natChains.push(chain);
    natRules.push(`-X ${chain}`);
  }
  const npComment = q("kubernetes service nodeports; NOTE: this must be the last rule in this chain");
  if (!cfg.nodeIPs) {
    natRules.push(`-A KUBE-SERVICES -m comment --comment ${npComment} -m addrtype --dst-type LOCAL${localhostNodePorts ? "" : " ! -d 127.0.0.0/8"} -j KUBE-NODEPORTS`);
  } else {
    for (const ip of cfg.nodeIPs) {
      if (ip.startsWith("127.") && !localhostNodePorts) continue;
      natRules.push(`-A KUBE-SERVICES -m comment --comment ${npComment} -d ${ip} -j KUBE-NODEPORTS`);
    }
  }
  if (!cfg.conntrackTCPLiberal) filterRules.push("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP");
  filterRules.push(`-A KUBE-FORWARD -m comment --comment ${q("kubernetes forwarding rules")} -m mark --mark ${mark}/${mark} -j ACCEPT`);
  filterRules.push(`-A KUBE-FORWARD -m comment --comment ${q("kubernetes forwarding conntrack rule")} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
  const chainLine = (c: string): string => `:${c} - [0:0]`;
  const restore = [
    "*filter", ...filterChains.map(chainLine), ...filterRules, "COMMIT",
    "*nat", ...natChains.map(chainLine), ...natRules, "COMMIT", "",
  ].join("\n");
  return { jumps: kubeProxyJumps(), restore };
}

/** Something to run commands in (a SimNode): only exec is used. */
export interface NetnsRunner {
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
}

/** Chain names of one table as `iptables-save -t <table>` lists them. */
export async function listChains(node: NetnsRunner, table: "filter" | "nat" | "raw" | "mangle"): Promise<string[]> {
  const r = await node.exec(["iptables-save", "-t", table]);
  return r.stdout.split("\n").filter((l) => l.startsWith(":")).map((l) => l.slice(1).split(" ")[0]!);
}

/**
 * Runs one kube-proxy full sync on node, as kube-proxy does it: sets route_localnet=1 (localhost
 * NodePorts), ensures the jump chains and rules (`iptables -N`, `-C` else `-I`), then feeds the rules
 * to `iptables-restore --noflush --counters` (stale service chains deleted). Idempotent; re-run it to
 * sync changed services. Uses the system `iptables` (nf_tables-backed here, like the plugin's).
 */
export async function applyKubeProxy(node: NetnsRunner, cfg: KubeProxyConfig): Promise<KubeProxyRules> {
  const rules = kubeProxyRules({ ...cfg, existingNatChains: await listChains(node, "nat") });
  if ((cfg.localhostNodePorts ?? true) && !cfg.nodeIPs) {
    await node.exec(["sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"]);
  }
  for (const j of rules.jumps) {
    await node.exec(["iptables", "-w", "-t", j.table, "-N", j.target], { allowFail: true });
    const present = await node.exec(["iptables", "-w", "-t", j.table, "-C", j.chain, ...j.args], { allowFail: true });
    if (present.code !== 0) await node.exec(["iptables", "-w", "-t", j.table, "-I", j.chain, ...j.args]);
  }
  await node.exec(["iptables-restore", "-w", "--noflush", "--counters"], { input: rules.restore });
  return rules;
}

/**
 * Removes everything applyKubeProxy wrote (kube-proxy's CleanupLeftovers, plus KUBE-MARK-MASQ,
 * KUBE-PROXY-FIREWALL and KUBE-FIREWALL): the jump rules, then every KUBE-* chain it owns. Idempotent.
 */
export async function removeKubeProxy(node: NetnsRunner): Promise<void> {
  for (const j of kubeProxyJumps()) {
    while ((await node.exec(["iptables", "-w", "-t", j.table, "-D", j.chain, ...j.args], { allowFail: true })).code === 0) { /* all copies */ }
  }
  const fixed: Record<"filter" | "nat", string[]> = {
    filter: ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL", "KUBE-FIREWALL"],
    nat: ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"],
  };
  for (const table of ["nat", "filter"] as const) {
    const existing = await listChains(node, table);
    const ours = existing.filter((c) => fixed[table].includes(c) || (table === "nat" && SERVICE_CHAIN.test(c)));
    if (ours.length === 0) continue;
    const text = [`*${table}`, ...ours.map((c) => `:${c} - [0:0]`), ...ours.map((c) => `-X ${c}`), "COMMIT", ""].join("\n");
    await node.exec(["iptables-restore", "-w", "--noflush"], { input: text });
  }
}
