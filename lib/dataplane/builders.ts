// Pure flow builders: node, segment, peer and pod flows of the segment pipeline.
import { nodeCookie, peerCookie, podCookie, Priority, Reg, segmentCookie, Table, type Flow } from "./pipeline.ts";

/** What the node-wide flows need to know. */
export interface NodeFlowSpec {
  /** 8-bit network id (names.networkId). */
  netId: bigint;
  tunnelPort: number;
  gatewayPort: number;
  gatewayIP: string;
  gatewayMAC: string;
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

function flow(table: number, priority: number, c: bigint, match: string[], actions: string[]): Flow {
  return { table, priority, cookie: c, match, actions };
}

/** Answer an ARP request in place with the given MAC for the target address. */
function arpReply(mac: string, ip: string): string[] {
  return [
    "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
    `set_field:${mac}->eth_src`,
    "set_field:2->arp_op",
    "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]",
    `set_field:${mac}->arp_sha`,
    "move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]",
    `set_field:${ip}->arp_spa`,
    "IN_PORT",
  ];
}

/** The node-wide flows: classifier for tunnel and gateway, gateway ARP, defaults of every table. */
export function nodeFlows(s: NodeFlowSpec): Flow[] {
  const c = nodeCookie(s.netId);
  return [
    // VNI 0 would claim the node's privilege (reach every segment): never accepted from the tunnel.
    flow(Table.Classifier, Priority.Responder, c, [`in_port=${s.tunnelPort}`, "tun_id=0"], ["drop"]),
    flow(Table.Classifier, Priority.Normal, c, [`in_port=${s.gatewayPort}`], [
      `load:0->${Reg.SrcSegment}`,
      `goto_table:${Table.FromNode}`,
    ]),
    flow(Table.Classifier, Priority.Miss, c, [], ["drop"]),
    flow(Table.SpoofGuard, Priority.Miss, c, [], ["drop"]),
    flow(Table.ArpResponder, Priority.Responder, c, ["arp", "arp_op=1", `arp_tpa=${s.gatewayIP}`], arpReply(s.gatewayMAC, s.gatewayIP)),
    flow(Table.ArpResponder, Priority.Responder, c, ["arp", "arp_op=2", `arp_tpa=${s.gatewayIP}`], [`output:${s.gatewayPort}`]),
    flow(Table.ArpResponder, Priority.Peer, c, ["ip"], [`goto_table:${Table.L3Forwarding}`]),
    flow(Table.ArpResponder, Priority.Miss, c, [], ["drop"]),
    flow(Table.FromNode, Priority.Miss, c, [], [`goto_table:${Table.L3Forwarding}`]),
    flow(Table.L3Forwarding, Priority.TunnelGuard, c, [`in_port=${s.tunnelPort}`], ["drop"]),
    flow(Table.L3Forwarding, Priority.ToNode, c, ["ip"], [`output:${s.gatewayPort}`]),
    flow(Table.L3Forwarding, Priority.Miss, c, [], ["drop"]),
    flow(Table.SegmentCheck, Priority.Normal, c, ["reg0=0"], [`output:${Reg.DstPort}`]),
    flow(Table.SegmentCheck, Priority.Miss, c, [], ["drop"]),
  ];
}

/** The one flow that lets pods of a segment reach each other. */
export function segmentFlows(netId: bigint, segment: number): Flow[] {
  return [
    flow(Table.SegmentCheck, Priority.Normal, segmentCookie(netId, segment), [
      `reg0=${segment}`,
      `reg1=${segment}`,
    ], [`output:${Reg.DstPort}`]),
  ];
}

/** 32-bit number of an IPv4 address. */
export function ipv4ToBigInt(ip: string): bigint {
  return ip.split(".").reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

/**
 * Per peer node: tunnel traffic is accepted only from a known peer (its segment from tun_id), and
 * traffic to the peer's pod range leaves through the tunnel with tun_id = the sender's segment.
 */
export function peerFlows(netId: bigint, p: PeerFlowSpec, tunnelPort: number): Flow[] {
  const c = peerCookie(netId, ipv4ToBigInt(p.nodeIP));
  return [
    flow(Table.Classifier, Priority.Normal, c, [`in_port=${tunnelPort}`, `tun_src=${p.nodeIP}`], [
      "move:NXM_NX_TUN_ID[0..23]->NXM_NX_REG0[0..23]",
      `goto_table:${Table.L3Forwarding}`,
    ]),
    flow(Table.L3Forwarding, Priority.Peer, c, ["ip", `nw_dst=${p.podCIDR}`], [
      "move:NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23]",
      `set_field:${p.nodeIP}->tun_dst`,
      `output:${tunnelPort}`,
    ]),
  ];
}

/** Per local pod: classify, guard its source, answer ARP for it, deliver to it. */
export function podFlows(p: PodFlowSpec, gatewayMAC: string): Flow[] {
  const c = podCookie(p.id);
  const inPort = `in_port=${p.port}`;
  return [
    flow(Table.Classifier, Priority.Normal, c, [inPort], [`load:${p.segment}->${Reg.SrcSegment}`, `goto_table:${Table.SpoofGuard}`]),
    flow(Table.SpoofGuard, Priority.Normal, c, [inPort, `dl_src=${p.mac}`, "ip", `nw_src=${p.ip}`], [`goto_table:${Table.ArpResponder}`]),
    flow(Table.SpoofGuard, Priority.Normal, c, [inPort, `dl_src=${p.mac}`, "arp", `arp_spa=${p.ip}`, `arp_sha=${p.mac}`], [
      `goto_table:${Table.ArpResponder}`,
    ]),
    flow(Table.ArpResponder, Priority.Responder, c, ["arp", "arp_op=1", `reg0=${p.segment}`, `arp_tpa=${p.ip}`], arpReply(p.mac, p.ip)),
    flow(Table.FromNode, Priority.Normal, c, ["arp", `arp_tpa=${p.ip}`], [`output:${p.port}`]),
    flow(Table.L3Forwarding, Priority.Normal, c, ["ip", `nw_dst=${p.ip}`], [
      `set_field:${gatewayMAC}->eth_src`,
      `set_field:${p.mac}->eth_dst`,
      `load:${p.segment}->${Reg.DstSegment}`,
      `load:${p.port}->${Reg.DstPort}`,
      `goto_table:${Table.SegmentCheck}`,
    ]),
  ];
}
