// Pure planning of an attachment: addressing from the IPAM result, routes, flow changes.
import { CniError, Code } from "../cni/errors.ts";
import { podFlows, segmentFlows, type NodePorts, type PodFlowSpec } from "../dataplane/builders.ts";
import { networkReconcile, type NodeModel } from "../dataplane/model.ts";
import type { Flow, FlowOp } from "../ovs/flow.ts";
import type { Result, ResultIP, Route } from "../cni/types.ts";
import { clusterRanges, type OvsplaneConfig } from "./config.ts";
import type { HostSpec } from "../dataplane/hoststate.ts";
import { GATEWAY_PORT, gatewayMac, networkId, tunnelPortName } from "../dataplane/names.ts";
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

/** The node's shared ports. */
export function nodeSpec(cfg: OvsplaneConfig, localIP: string): NodeSpec {
  return {
    bridge: cfg.bridge,
    datapathType: cfg.datapathType,
    tunnel: { name: tunnelPortName(cfg.tunnel.dstPort), localIP, dstPort: cfg.tunnel.dstPort },
    gateway: { name: GATEWAY_PORT, mac: gatewayMac(cfg.bridge) },
  };
}

/** The node model of one network in static mode: this node's ports, the gateway from IPAM, peers from the conflist. */
export function staticModel(cfg: OvsplaneConfig, node: NodeSpec, ofports: Ofports, gatewayIP: string): NodeModel {
  return {
    ports: { tunnel: ofports.tunnel, gateway: ofports.gateway, gatewayMAC: node.gateway.mac },
    networks: [{ name: cfg.name, gatewayIP, peers: cfg.peers, globalSegments: cfg.globalSegments }],
  };
}

/** The host state the network needs on this node (static mode): gateway from IPAM, peers and options from the conflist. */
export function hostSpec(cfg: OvsplaneConfig, addr: PodAddressing): HostSpec {
  return {
    network: cfg.name,
    netId: networkId(cfg.name),
    gateways: addr.gateways,
    gatewayIP: addr.gatewayIP,
    peers: cfg.peers,
    podCIDRs: cfg.podCIDRs,
    clusterRanges: clusterRanges(cfg),
    ...(cfg.clusterCIDRs ? { clusterCIDRs: cfg.clusterCIDRs } : {}),
    routed: cfg.peerRoutes,
    masquerade: cfg.masquerade,
  };
}

/** Options of addFlowOps. */
export interface AddFlowSpec {
  cfg: OvsplaneConfig;
  model: NodeModel;
  /** The flows of networkScope(cfg.name) read back from the bridge. */
  current: readonly Flow[];
  pod: PodFlowSpec;
}

/**
 * What an ADD in static mode writes, as one atomic bundle: the differences between the network's
 * node-wide flows and the model (nothing when they are right), the pod's segment flow, its own flows.
 */
export function addFlowOps(s: AddFlowSpec): FlowOp[] {
  return [...networkReconcile(s.model, s.cfg.name, s.current), ...podAddOps(s.pod, s.model.ports)];
}

/** The pod's own flows and its segment's flow, as adds (OFPFC_ADD: a segment flow already there stays as it is). */
export function podAddOps(pod: PodFlowSpec, ports: NodePorts): FlowOp[] {
  return [...segmentFlows(pod.segment), ...podFlows(pod, ports)].map((flow) => ({ op: "add" as const, flow }));
}
