// Typed flows of the OpenFlow tests: the golden reconcile bundle (test/unit/golden/flows-reconcile.txt at 4e3bed9) and extra shapes.
import { act, EthType, exact, masked, match, on, slice, type Flow, type FlowOp } from "../../lib/ovs/flow.ts";

/** Cookies of the golden bundle: the node's flows, the peer-node family (and one peer), segment 100, pod 0x1234. */
export const COOKIE = {
  node: 0x6f76016c00000000n,
  peers: 0x6f76036c00000000n,
  peer: 0x6f76036cc6120002n,
  segment100: 0x6f76026c00000064n,
  pod: 0x6f76040000001234n,
} as const;
export const ALL_ONES = 0xffffffffffffffffn;
/** The mask of the peer-node cookie family. */
export const PEERS_MASK = 0xffffffff00000000n;

const GW_MAC = "0a:58:0a:f4:01:01";
const GW_IP = "10.244.1.1";
const POD = { port: 5, ip: "10.244.1.5", mac: "0a:58:0a:f4:01:05", segment: 100 } as const;

const fl = (cookie: bigint, table: number, priority: number, m: Flow["match"], actions: Flow["actions"] = []): Flow => ({ table, priority, cookie, match: m, actions });
const add = (flow: Flow): FlowOp => ({ op: "add", flow });

/** The ARP responder's actions: answer the request for `ip` with `mac`, back where it came from. */
const arpAnswer = (mac: string, ip: string) => [
  act.move(slice("dl_src"), slice("dl_dst")),
  act.setMac("dl_src", mac),
  act.setInt("arp_op", 2),
  act.move(slice("arp_sha"), slice("arp_tha")),
  act.setMac("arp_sha", mac),
  act.move(slice("arp_spa"), slice("arp_tpa")),
  act.setIPv4("arp_spa", ip),
  act.inPort(),
];

/** A pod of the fixtures: its flows' cookie, port, address, MAC and segment. */
export interface FixturePod {
  cookie: bigint;
  port: number;
  ip: string;
  mac: string;
  segment: number;
}
/** The golden pod: port 5, 10.244.1.5, segment 100. */
export const POD_A: FixturePod = { cookie: COOKIE.pod, ...POD };

/** A pod's flows as the golden bundle has them: classifier, spoof guard, ARP responder, node ARP, L3. */
export function podFlows(p: FixturePod): Flow[] {
  const c = p.cookie;
  return [
    fl(c, 0, 200, on.inPort(p.port), [act.loadReg(0, p.segment), act.goto(10)]),
    fl(c, 10, 200, match(on.inPort(p.port), on.ethSrc(p.mac), on.ipSrc(p.ip)), [act.goto(20)]),
    fl(c, 10, 200, match(on.inPort(p.port), on.ethSrc(p.mac), on.arpSpa(p.ip), on.arpSha(p.mac)), [act.goto(20)]),
    fl(c, 20, 300, match(on.arpOp(1), on.reg(0, p.segment), on.arpTpa(p.ip)), arpAnswer(p.mac, p.ip)),
    fl(c, 25, 200, on.arpTpa(p.ip), [act.output(p.port)]),
    fl(c, 30, 200, on.ipDst(p.ip), [act.setMac("dl_src", GW_MAC), act.setMac("dl_dst", p.mac), act.loadReg(1, p.segment), act.loadReg(2, p.port), act.goto(40)]),
  ];
}

/** A peer node's flows: tunnel classifier by underlay source, L3 to its pod range. */
export function peerFlows(nodeIP: string, podCIDR: string, cookie: bigint): Flow[] {
  return [
    fl(cookie, 0, 200, match(on.inPort(1), on.tunSrc(nodeIP)), [act.move(slice("tun_id", 0, 23), slice("reg0", 0, 23)), act.goto(30)]),
    fl(cookie, 30, 100, on.ipDst(podCIDR), [act.move(slice("reg0", 0, 23), slice("tun_id", 0, 23)), act.setIPv4("tun_dst", nodeIP), act.output(1)]),
  ];
}

/** A segment's check in table 40. */
export function segmentFlow(segment: number, cookie: bigint): Flow {
  return fl(cookie, 40, 200, match(on.reg(0, segment), on.reg(1, segment)), [act.outputReg(2)]);
}

const n = COOKIE.node;
/** The node's own flows (cookie COOKIE.node). */
export const NODE_FLOWS: readonly Flow[] = [
  fl(n, 0, 300, match(on.inPort(1), on.tunId(0))),
  fl(n, 0, 200, on.inPort(2), [act.loadReg(0, 0), act.goto(25)]),
  fl(n, 0, 0, {}),
  fl(n, 10, 0, {}),
  fl(n, 20, 300, match(on.arpOp(1), on.arpTpa(GW_IP)), arpAnswer(GW_MAC, GW_IP)),
  fl(n, 20, 300, match(on.arpOp(2), on.arpTpa(GW_IP)), [act.output(2)]),
  fl(n, 20, 100, on.ip(), [act.goto(30)]),
  fl(n, 20, 0, {}),
  fl(n, 25, 0, {}, [act.goto(30)]),
  fl(n, 30, 150, on.inPort(1)),
  fl(n, 30, 50, on.ip(), [act.output(2)]),
  fl(n, 30, 0, {}),
  fl(n, 40, 200, on.reg(0, 0), [act.outputReg(2)]),
  fl(n, 40, 0, {}),
];

/** The golden reconcile bundle, op for op as test/unit/golden/flows-reconcile.txt said it (node, peers, segment, pod). */
export const GOLDEN_OPS: readonly FlowOp[] = [
  { op: "delete", cookie: n, mask: ALL_ONES },
  ...NODE_FLOWS.map(add),
  { op: "delete", cookie: COOKIE.peers, mask: PEERS_MASK },
  ...peerFlows("198.18.0.2", "10.244.2.0/24", COOKIE.peer).map(add),
  add(segmentFlow(100, COOKIE.segment100)),
  ...podFlows(POD_A).map(add),
];

/** The flows the golden bundle adds. */
export const GOLDEN_FLOWS: readonly Flow[] = GOLDEN_OPS.flatMap((o) => (o.op === "add" ? [o.flow] : []));

/** Cookie of the extra flows. */
export const EXTRA_COOKIE = 0x6f76ee0000000001n;
/** Shapes the golden bundle lacks: masks, partial slices, whole-field loads, every set_field target we use. */
export const EXTRA_FLOWS: readonly Flow[] = [
  fl(EXTRA_COOKIE, 50, 10, { reg3: masked("reg3", 0x10n, 0xf0n), tun_id: masked("tun_id", 0x500n, 0xffffffn) }, [
    act.load(slice("reg2", 4, 7), 5), act.outputReg(2), act.output(7),
  ]),
  fl(EXTRA_COOKIE, 50, 11, match(on.ipSrc("10.0.0.0/8"), on.ipDst("192.168.1.0/30"), { dl_dst: exact(0x0a580af40199n) }), [
    act.move(slice("reg1", 0, 15), slice("reg2", 16, 31)), { type: "output_reg", src: slice("reg3", 0, 15) }, act.setIPv4("nw_dst", "10.1.2.3"),
  ]),
  fl(EXTRA_COOKIE, 51, 12, match({ dl_type: exact(EthType.ARP) }, { arp_tha: exact(0x0a580af40102n) }, on.tunSrc("198.18.0.9")), [
    act.setInt("tun_id", 0x123456), act.setMac("arp_sha", GW_MAC), act.load(slice("reg5", 0, 0), 1), act.load(slice("reg6", 8, 31), 0xabcdef),
  ]),
  fl(EXTRA_COOKIE, 51, 13, { in_port: exact(3), reg15: exact(0xffffffffn) }, [act.loadReg(15, 0xffffffff), act.inPort()]),
  ctFlow(EXTRA_COOKIE, 52),
  fl(EXTRA_COOKIE, 52, 2, on.ip(), [act.ctLookup(7, 20)]),
  fl(EXTRA_COOKIE, 52, 3, on.arpTpa("10.244.0.0/16")),
];

/** A conntrack flow: ct_state/ct_zone/ct_mark next to a register and tunnel match; commit with exec, then a lookup. */
export function ctFlow(cookie: bigint, table: number): Flow {
  return fl(cookie, table, 1, match(on.inPort(1), on.ip(), on.ctState(["Trk", "Est"], ["New"]), { ct_zone: exact(5) }, on.ctMark(1, 1), on.reg(0, 1), on.tunId(0)), [
    act.ctCommit(5, 1), act.ctLookup(3, 10),
  ]);
}
