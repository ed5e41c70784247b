// Pure planning of an attachment: addressing from the IPAM result, kernel commands, flow changes.
import { CniError, Code } from "../cni/errors.ts";
import { nodeFlows, peerFlows, podFlows, segmentFlows, type PodFlowSpec } from "../dataplane/builders.ts";
import { EXACT_MASK, NETWORK_KIND_MASK, nodeCookie, peerCookie, type FlowOp } from "../dataplane/pipeline.ts";
import type { Result, ResultIP, Route } from "../cni/types.ts";
import type { OvsplaneConfig } from "./config.ts";
import { GATEWAY_PORT, macFrom, networkId, tunnelPortName } from "../dataplane/names.ts";
import type { NodeSpec, Ofports } from "../node/bridge.ts";

/** What the pod gets, derived from the IPAM result. */
export interface PodAddressing {
  ips: ResultIP[];
  /** The pod's IPv4 address without prefix. */
  ipv4: string;
  /** The IPv4 gateway (no prefix). */
  gatewayIP: string;
  /** Gateway addresses with the pod prefix, for the node's gateway port. */
  gateways: string[];
  routes: Route[];
}

/** Reads the IPAM result: one IPv4 address with a gateway; IPv6 is refused until the dataplane has it. */
export function podAddressing(ipam: Result): PodAddressing {
  const ips = (ipam.ips ?? []).map(({ address, gateway }) => (gateway ? { address, gateway } : { address }));
  const v6 = ips.find((i) => i.address.includes(":"));
  if (v6) throw new CniError(Code.InvalidConfig, `invalid config: IPAM returned IPv6 address ${v6.address}: the ovsplane dataplane is IPv4 only`);
  const v4 = ips[0];
  if (!v4) throw new CniError(Code.StepFailed, "IPAM returned no IPv4 address");
  const [ipv4, prefix] = v4.address.split("/") as [string, string];
  const gatewayIP = v4.gateway;
  if (!gatewayIP) throw new CniError(Code.StepFailed, `IPAM returned ${v4.address} without a gateway`);
  const gateways = ips.filter((i) => i.gateway).map((i) => `${i.gateway}/${i.address.split("/")[1] ?? prefix}`);
  return { ips, ipv4, gatewayIP, gateways, routes: ipam.routes ?? [] };
}

/** Routes the pod needs: the IPAM routes, plus each peer's pod range when there is no default route. */
export function podRoutes(addr: PodAddressing, cfg: OvsplaneConfig): Route[] {
  const routes = addr.routes.map((r) => ({ ...r, gw: r.gw ?? addr.gatewayIP }));
  const hasDefault = routes.some((r) => r.dst === "0.0.0.0/0");
  if (!hasDefault) {
    for (const p of cfg.peers) if (!routes.some((r) => r.dst === p.podCIDR)) routes.push({ dst: p.podCIDR, gw: addr.gatewayIP });
  }
  return routes;
}

/** Options of podLinkCommands. */
export interface PodLinkSpec {
  ifname: string;
  mac: string;
  hostName: string;
  hostMac: string;
  mtu: number;
  ownNetns: string;
  addr: PodAddressing;
  routes: Route[];
}

/** `ip -batch` lines run inside the pod's netns: the veth (host end sent to our netns), addresses, routes. */
export function podLinkCommands(s: PodLinkSpec): string[] {
  return [
    `link add ${s.ifname} address ${s.mac} mtu ${s.mtu} type veth peer name ${s.hostName} address ${s.hostMac} mtu ${s.mtu} netns ${s.ownNetns}`,
    ...s.addr.ips.map((i) => `addr add ${i.address} dev ${s.ifname}`),
    `link set ${s.ifname} up`,
    ...s.routes.map((r) => `route add ${r.dst}${r.gw ? ` via ${r.gw}` : ""} dev ${s.ifname}${r.mtu ? ` mtu ${r.mtu}` : ""}`),
  ];
}

/** The node's shared ports. */
export function nodeSpec(cfg: OvsplaneConfig, localIP: string): NodeSpec {
  return {
    bridge: cfg.bridge,
    datapathType: cfg.datapathType,
    tunnel: { name: tunnelPortName(cfg.tunnel.dstPort), localIP, dstPort: cfg.tunnel.dstPort },
    gateway: { name: GATEWAY_PORT, mac: macFrom(`gw/${cfg.bridge}`) },
  };
}

/** Options of reconcileFlowOps. */
export interface ReconcileSpec {
  cfg: OvsplaneConfig;
  node: NodeSpec;
  ofports: Ofports;
  gatewayIP: string;
  pod?: PodFlowSpec;
}

/**
 * One atomic bundle: the network's node flows and peer flows replaced as a whole (reconciled, never
 * duplicated), the pod's segment flow ensured, and the pod's own flows added.
 */
export function reconcileFlowOps(s: ReconcileSpec): FlowOp[] {
  const netId = networkId(s.cfg.name);
  const ops: FlowOp[] = [
    { op: "delete", cookie: nodeCookie(netId), mask: EXACT_MASK },
    ...nodeFlows({ netId, tunnelPort: s.ofports.tunnel, gatewayPort: s.ofports.gateway, gatewayIP: s.gatewayIP, gatewayMAC: s.node.gateway.mac }).map(
      (flow) => ({ op: "add" as const, flow }),
    ),
    { op: "delete", cookie: peerCookie(netId, 0n), mask: NETWORK_KIND_MASK },
    ...s.cfg.peers.flatMap((p) => peerFlows(netId, p, s.ofports.tunnel)).map((flow) => ({ op: "add" as const, flow })),
  ];
  if (s.pod) {
    ops.push(...segmentFlows(netId, s.pod.segment).map((flow) => ({ op: "add" as const, flow })));
    ops.push(...podFlows(s.pod, s.node.gateway.mac).map((flow) => ({ op: "add" as const, flow })));
  }
  return ops;
}
