// Pure flow builders of the segment pipeline: node defaults, gateway, segments, peers, routes and pods.
import { act, ipv4, match, on, slice, type Action, type Flow, type Match } from "../ovs/flow.ts";
import {
  CT_ZONE, CtMark, gatewayCookie, globalCookie, NODE_COOKIE, peerCookie, podCookie, PolicyFlag, PolicyPriority, Priority, Reg, routeCookie, segmentCookie, Table, VNI_BITS,
} from "./pipeline.ts";
import { macFrom } from "./names.ts";

/** The bridge's shared ports, by OpenFlow number, and the gateway's MAC. */
export interface NodePorts {
  tunnel: number;
  gateway: number;
  gatewayMAC: string;
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

/** The MAC the pipeline answers with when the node asks for an address in a peer's pod range. */
export const PEER_RANGE_MAC = macFrom("ovsplane/peer-ranges");

function flow(table: number, priority: number, c: bigint, m: Match, actions: Action[]): Flow {
  return { table, priority, cookie: c, match: m, actions };
}

const vni = (field: "reg0" | "tun_id") => slice(field, 0, VNI_BITS - 1);
const reg = (r: number) => slice(`reg${r}` as "reg0");

/** Turn an ARP request into its reply in place, from `mac`; the asked address becomes the sender's. */
function arpReply(mac: string): Action[] {
  return [
    act.move(slice("dl_src"), slice("dl_dst")),
    act.setMac("dl_src", mac),
    act.setInt("arp_op", 2),
    act.move(slice("arp_sha"), slice("arp_tha")),
    act.setMac("arp_sha", mac),
    act.move(slice("arp_tpa"), reg(Reg.Scratch)),
    act.move(slice("arp_spa"), slice("arp_tpa")),
    act.move(reg(Reg.Scratch), slice("arp_spa")),
    act.inPort(),
  ];
}

/** The bridge-wide defaults: gateway classification, conntrack, replies to the node, the miss of every table. */
export function nodeFlows(p: NodePorts): Flow[] {
  const c = NODE_COOKIE;
  const toNode = [act.setMac("dl_dst", p.gatewayMAC), act.output(p.gateway)];
  const fromNodeReply = match(on.ip(), on.ctState(["Trk", "Est", "Rpl"]), on.ctMark(CtMark.FromNode, CtMark.FromNode));
  return [
    // From the gateway: the node (reg0 0) unless a pod's address says otherwise (podFlows).
    flow(Table.Classifier, Priority.Normal, c, on.inPort(p.gateway), [act.loadReg(Reg.SrcSegment, 0), act.goto(Table.FromNode)]),
    flow(Table.Classifier, Priority.Miss, c, {}, []),
    flow(Table.SpoofGuard, Priority.Miss, c, {}, []),
    flow(Table.ArpResponder, Priority.Peer, c, on.ip(), [act.goto(Table.EgressTrack)]),
    flow(Table.ArpResponder, Priority.Miss, c, {}, []),
    flow(Table.FromNode, Priority.Miss, c, {}, [act.goto(Table.Conntrack)]),
    // With nat: a reply of a Service connection this node DNAT'd (its endpoint elsewhere) is un-DNAT'd.
    flow(Table.Conntrack, Priority.Normal, c, on.ip(), [act.ctNat(CT_ZONE, Table.ConntrackState)]),
    flow(Table.Conntrack, Priority.Miss, c, {}, [act.goto(Table.L3Forwarding)]),
    // A connection the node starts (its own, or a pod's it DNAT'd for a Service) is committed, marked
    // FromNode; a reply of such a connection goes back to the node, whose conntrack undoes its NAT.
    flow(Table.ConntrackState, Priority.Responder, c, match(on.inPort(p.gateway), on.ip(), on.ctState(["Trk", "New"])), [
      act.ctCommit(CT_ZONE, CtMark.FromNode),
      act.goto(Table.L3Forwarding),
    ]),
    flow(Table.ConntrackState, Priority.Responder, c, on.inPort(p.gateway), [act.goto(Table.L3Forwarding)]),
    flow(Table.ConntrackState, Priority.Normal, c, fromNodeReply, toNode),
    flow(Table.ConntrackState, Priority.Miss, c, {}, [act.goto(Table.L3Forwarding)]),
    // A pod's packet for a local pod: looked up once (from the node or the tunnel it already was).
    flow(Table.PodConntrack, Priority.Responder, c, on.inPort(p.gateway), [act.goto(Table.IngressRule)]),
    flow(Table.PodConntrack, Priority.Responder, c, on.inPort(p.tunnel), [act.goto(Table.IngressRule)]),
    flow(Table.PodConntrack, Priority.Normal, c, on.ip(), [act.ctNat(CT_ZONE, Table.PodReply)]),
    flow(Table.PodConntrack, Priority.Miss, c, {}, [act.goto(Table.SegmentCheck)]),
    flow(Table.PodReply, Priority.Normal, c, fromNodeReply, toNode),
    flow(Table.PodReply, Priority.Miss, c, {}, [act.goto(Table.IngressRule)]),
    // Tunnel traffic that is not for a local pod goes nowhere: no remote pod uses this node as a router.
    flow(Table.L3Forwarding, Priority.TunnelGuard, c, on.inPort(p.tunnel), []),
    flow(Table.L3Forwarding, Priority.ToNode, c, on.ip(), toNode),
    flow(Table.L3Forwarding, Priority.Miss, c, {}, []),
    flow(Table.SegmentCheck, Priority.Normal, c, on.reg(Reg.SrcSegment, 0), [act.outputReg(Reg.DstPort)]),
    flow(Table.SegmentCheck, Priority.Miss, c, {}, []),
    // Services (services.ts adds them): what no Service flow takes goes on to egress policy, unchanged.
    flow(Table.ServiceLB, Priority.Miss, c, {}, [act.resubmit(Table.EgressTrack)]),
    flow(Table.ServiceDNAT, Priority.Miss, c, {}, [act.resubmit(Table.EgressTrack)]),
    ...policyDefaults(p),
  ];
}

/**
 * The policy tables' defaults (lib/policy/compile.ts adds the rules): a pod no policy selects passes each
 * table with one lookup; established and related connections and the node's own traffic pass; a connection
 * marked PolicyFlag.Commit is committed before it leaves for another node or reaches a local pod.
 */
function policyDefaults(p: NodePorts): Flow[] {
  const c = NODE_COOKIE;
  const P = PolicyPriority;
  const est = on.ctState(["Trk", "Est"]);
  const rel = on.ctState(["Trk", "Rel"]);
  const marked = match(on.ip(), on.regBits(Reg.PolicyFlags, PolicyFlag.Commit, PolicyFlag.Commit));
  const commit = act.ctCommitOnly(CT_ZONE);
  return [
    flow(Table.EgressTrack, P.Miss, c, {}, [act.goto(Table.L3Forwarding)]),
    flow(Table.EgressRule, P.Pass, c, est, [act.goto(Table.L3Forwarding)]),
    flow(Table.EgressRule, P.Pass, c, rel, [act.goto(Table.L3Forwarding)]),
    flow(Table.EgressRule, P.Miss, c, {}, [act.load(slice(`reg${Reg.PolicyFlags}` as "reg3", 0), 1), act.goto(Table.L3Forwarding)]),
    flow(Table.TunnelOut, P.Commit, c, marked, [commit, act.output(p.tunnel)]),
    flow(Table.TunnelOut, P.Miss, c, {}, [act.output(p.tunnel)]),
    flow(Table.IngressRule, P.Pass, c, est, [act.goto(Table.SegmentCheck)]),
    flow(Table.IngressRule, P.Pass, c, rel, [act.goto(Table.SegmentCheck)]),
    flow(Table.IngressRule, P.Pass, c, on.reg(Reg.SrcSegment, 0), [act.goto(Table.SegmentCheck)]),
    flow(Table.IngressRule, P.Commit, c, marked, [commit, act.goto(Table.SegmentCheck)]),
    flow(Table.IngressRule, P.Miss, c, {}, [act.goto(Table.SegmentCheck)]),
  ];
}

/** A network's gateway: ARP for the gateway address answered in place, ARP replies to it handed to the node. */
export function gatewayFlows(g: GatewaySpec): Flow[] {
  const c = gatewayCookie(g.netId);
  return [
    flow(Table.ArpResponder, Priority.Responder, c, match(on.arpOp(1), on.arpTpa(g.gatewayIP)), arpReply(g.gatewayMAC)),
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

/** A global segment: its pods reach, and are reached by, pods of every segment. */
export function globalFlows(netId: bigint, segment: number): Flow[] {
  const c = globalCookie(netId, segment);
  return [
    flow(Table.SegmentCheck, Priority.Normal, c, on.reg(Reg.SrcSegment, segment), [act.outputReg(Reg.DstPort)]),
    flow(Table.SegmentCheck, Priority.Normal, c, on.reg(Reg.DstSegment, segment), [act.outputReg(Reg.DstPort)]),
  ];
}

/**
 * Tunnel traffic is accepted only from a known peer, its segment taken from tun_id (bridge-wide);
 * VNI 0 is the peer node's own traffic, with the node's privilege.
 */
export function peerFlows(nodeIP: string, tunnelPort: number): Flow[] {
  return [
    flow(Table.Classifier, Priority.Normal, peerCookie(ipv4(nodeIP)), match(on.inPort(tunnelPort), on.tunSrc(nodeIP)), [
      act.move(vni("tun_id"), vni("reg0")),
      act.goto(Table.Conntrack),
    ]),
  ];
}

/**
 * A network's route to a peer's pod range: traffic leaves through the tunnel with tun_id = the
 * sender's segment (0 for the node); the node's ARP for the range is answered; nothing from the node
 * claims a peer pod's address.
 */
export function routeFlows(netId: bigint, p: PeerFlowSpec, ports: NodePorts): Flow[] {
  const c = routeCookie(netId, ipv4(p.nodeIP));
  return [
    flow(Table.Classifier, Priority.Source, c, match(on.inPort(ports.gateway), on.ipSrc(p.podCIDR)), []),
    flow(Table.FromNode, Priority.Peer, c, match(on.arpOp(1), on.arpTpa(p.podCIDR)), arpReply(PEER_RANGE_MAC)),
    flow(Table.L3Forwarding, Priority.Peer, c, on.ipDst(p.podCIDR), [
      act.move(vni("reg0"), vni("tun_id")),
      act.setIPv4("tun_dst", p.nodeIP),
      act.goto(Table.TunnelOut),
    ]),
  ];
}

/**
 * Per local pod: classify it (also when the node hands back its packets after a Service's DNAT: by
 * source address), guard its source, answer ARP for it, deliver to it.
 */
export function podFlows(p: PodFlowSpec, ports: Pick<NodePorts, "gateway" | "gatewayMAC">): Flow[] {
  const c = podCookie(p.id);
  const from = on.inPort(p.port);
  return [
    flow(Table.Classifier, Priority.Normal, c, from, [act.loadReg(Reg.SrcSegment, p.segment), act.goto(Table.SpoofGuard)]),
    flow(Table.Classifier, Priority.Source, c, match(on.inPort(ports.gateway), on.ipSrc(p.ip)), [
      act.loadReg(Reg.SrcSegment, p.segment),
      act.goto(Table.FromNode),
    ]),
    flow(Table.SpoofGuard, Priority.Normal, c, match(from, on.ethSrc(p.mac), on.ipSrc(p.ip)), [act.goto(Table.ArpResponder)]),
    flow(Table.SpoofGuard, Priority.Normal, c, match(from, on.ethSrc(p.mac), on.arpSpa(p.ip), on.arpSha(p.mac)), [act.goto(Table.ArpResponder)]),
    flow(Table.ArpResponder, Priority.Responder, c, match(on.arpOp(1), on.arpTpa(p.ip)), arpReply(p.mac)),
    flow(Table.FromNode, Priority.Normal, c, on.arpTpa(p.ip), [act.output(p.port)]),
    flow(Table.L3Forwarding, Priority.Normal, c, on.ipDst(p.ip), [
      act.setMac("dl_src", ports.gatewayMAC),
      act.setMac("dl_dst", p.mac),
      act.loadReg(Reg.DstSegment, p.segment),
      act.loadReg(Reg.DstPort, p.port),
      act.goto(Table.PodConntrack),
    ]),
  ];
}
