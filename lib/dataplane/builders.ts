// Pure flow builders of the segment pipeline: node defaults, gateway, segments, peers, routes and pods.
import { act, ipv4, match, on, slice, type Action, type Flow, type Match } from "../ovs/flow.ts";
import { gatewayCookie, NODE_COOKIE, peerCookie, podCookie, Priority, Reg, routeCookie, segmentCookie, Table, VNI_BITS } from "./pipeline.ts";

/** The bridge's shared ports, by OpenFlow number. */
export interface NodePorts {
  tunnel: number;
  gateway: number;
}

/** A network's gateway on this node. */
export interface GatewaySpec {
  /** 8-bit network id (names.networkId). */
  netId: bigint;
  gatewayIP: string;
  gatewayMAC: string;
  gatewayPort: number;
}

/** A local pod attachment. */
export interface PodFlowSpec {
  /** 40-bit id of the attachment (hash of network/containerID/ifname). */
  id: bigint;
  port: number;
  ip: string;
  mac: string;
  segment: number;
}

/** A peer node: its underlay address and pod range. */
export interface PeerFlowSpec {
  nodeIP: string;
  podCIDR: string;
}

function flow(table: number, priority: number, c: bigint, m: Match, actions: Action[]): Flow {
  return { table, priority, cookie: c, match: m, actions };
}

const vni = (field: "reg0" | "tun_id") => slice(field, 0, VNI_BITS - 1);

/** Answer an ARP request in place with the given MAC for the target address. */
function arpReply(mac: string, ip: string): Action[] {
  return [
    act.move(slice("dl_src"), slice("dl_dst")),
    act.setMac("dl_src", mac),
    act.setInt("arp_op", 2),
    act.move(slice("arp_sha"), slice("arp_tha")),
    act.setMac("arp_sha", mac),
    act.move(slice("arp_spa"), slice("arp_tpa")),
    act.setIPv4("arp_spa", ip),
    act.inPort(),
  ];
}

/** The bridge-wide defaults: tunnel and gateway classification, the miss of every table. */
export function nodeFlows(p: NodePorts): Flow[] {
  const c = NODE_COOKIE;
  return [
    // VNI 0 would claim the node's privilege (reach every segment): never accepted from the tunnel.
    flow(Table.Classifier, Priority.Responder, c, match(on.inPort(p.tunnel), on.tunId(0)), []),
    flow(Table.Classifier, Priority.Normal, c, on.inPort(p.gateway), [act.loadReg(Reg.SrcSegment, 0), act.goto(Table.FromNode)]),
    flow(Table.Classifier, Priority.Miss, c, {}, []),
    flow(Table.SpoofGuard, Priority.Miss, c, {}, []),
    flow(Table.ArpResponder, Priority.Peer, c, on.ip(), [act.goto(Table.L3Forwarding)]),
    flow(Table.ArpResponder, Priority.Miss, c, {}, []),
    flow(Table.FromNode, Priority.Miss, c, {}, [act.goto(Table.L3Forwarding)]),
    flow(Table.L3Forwarding, Priority.TunnelGuard, c, on.inPort(p.tunnel), []),
    flow(Table.L3Forwarding, Priority.ToNode, c, on.ip(), [act.output(p.gateway)]),
    flow(Table.L3Forwarding, Priority.Miss, c, {}, []),
    flow(Table.SegmentCheck, Priority.Normal, c, on.reg(Reg.SrcSegment, 0), [act.outputReg(Reg.DstPort)]),
    flow(Table.SegmentCheck, Priority.Miss, c, {}, []),
  ];
}

/** A network's gateway: ARP for the gateway address answered in place, ARP replies to it handed to the node. */
export function gatewayFlows(g: GatewaySpec): Flow[] {
  const c = gatewayCookie(g.netId);
  return [
    flow(Table.ArpResponder, Priority.Responder, c, match(on.arpOp(1), on.arpTpa(g.gatewayIP)), arpReply(g.gatewayMAC, g.gatewayIP)),
    flow(Table.ArpResponder, Priority.Responder, c, match(on.arpOp(2), on.arpTpa(g.gatewayIP)), [act.output(g.gatewayPort)]),
  ];
}

/** The one flow that lets pods of a segment reach each other. */
export function segmentFlows(segment: number): Flow[] {
  return [
    flow(Table.SegmentCheck, Priority.Normal, segmentCookie(segment), match(on.reg(Reg.SrcSegment, segment), on.reg(Reg.DstSegment, segment)), [
      act.outputReg(Reg.DstPort),
    ]),
  ];
}

/** Tunnel traffic is accepted only from a known peer, its segment taken from tun_id (bridge-wide). */
export function peerFlows(nodeIP: string, tunnelPort: number): Flow[] {
  return [
    flow(Table.Classifier, Priority.Normal, peerCookie(ipv4(nodeIP)), match(on.inPort(tunnelPort), on.tunSrc(nodeIP)), [
      act.move(vni("tun_id"), vni("reg0")),
      act.goto(Table.L3Forwarding),
    ]),
  ];
}

/** A network's route: traffic to the peer's pod range leaves through the tunnel with tun_id = the sender's segment. */
export function routeFlows(netId: bigint, p: PeerFlowSpec, tunnelPort: number): Flow[] {
  return [
    flow(Table.L3Forwarding, Priority.Peer, routeCookie(netId, ipv4(p.nodeIP)), on.ipDst(p.podCIDR), [
      act.move(vni("reg0"), vni("tun_id")),
      act.setIPv4("tun_dst", p.nodeIP),
      act.output(tunnelPort),
    ]),
  ];
}

/** Per local pod: classify, guard its source, answer ARP for it, deliver to it. */
export function podFlows(p: PodFlowSpec, gatewayMAC: string): Flow[] {
  const c = podCookie(p.id);
  const from = on.inPort(p.port);
  return [
    flow(Table.Classifier, Priority.Normal, c, from, [act.loadReg(Reg.SrcSegment, p.segment), act.goto(Table.SpoofGuard)]),
    flow(Table.SpoofGuard, Priority.Normal, c, match(from, on.ethSrc(p.mac), on.ipSrc(p.ip)), [act.goto(Table.ArpResponder)]),
    flow(Table.SpoofGuard, Priority.Normal, c, match(from, on.ethSrc(p.mac), on.arpSpa(p.ip), on.arpSha(p.mac)), [act.goto(Table.ArpResponder)]),
    flow(Table.ArpResponder, Priority.Responder, c, match(on.arpOp(1), on.reg(Reg.SrcSegment, p.segment), on.arpTpa(p.ip)), arpReply(p.mac, p.ip)),
    flow(Table.FromNode, Priority.Normal, c, on.arpTpa(p.ip), [act.output(p.port)]),
    flow(Table.L3Forwarding, Priority.Normal, c, on.ipDst(p.ip), [
      act.setMac("dl_src", gatewayMAC),
      act.setMac("dl_dst", p.mac),
      act.loadReg(Reg.DstSegment, p.segment),
      act.loadReg(Reg.DstPort, p.port),
      act.goto(Table.SegmentCheck),
    ]),
  ];
}
