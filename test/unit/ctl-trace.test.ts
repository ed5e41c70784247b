// ovsplanectl trace, pure parts: parsing captured ofproto/trace outputs (OVS 3.1) into steps, and explaining them.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseFlowFields, parseTrace } from "../../lib/ctl/trace/parse.ts";
import { explainTrace } from "../../lib/ctl/trace/explain.ts";
import { cookieOwner, type PodRef, type TraceContext } from "../../lib/ctl/trace/names.ts";
import { attachmentId, networkId } from "../../lib/dataplane/names.ts";
import { globalCookie, NODE_COOKIE, peerCookie, routeCookie, segmentCookie } from "../../lib/dataplane/pipeline.ts";
import { ipv4 } from "../../lib/ovs/flow.ts";
import { firstHost, flowSpec, parseTarget } from "../../lib/ctl/trace/flowspec.ts";

const t = suite("ctl trace");
const fixture = (name: string) => readFileSync(join(import.meta.dirname ?? __dirname, "fixtures", `trace-${name}.txt`), "utf8");

// The node the fixtures were captured on (node A of the two-node integration setup).
const pod = (name: string, ofport: number, mac: string, ip: string, segment: number): PodRef => ({
  id: attachmentId("podnet", `ctr-${name}`, "eth0"), label: `default/${name}`, ofport, mac, ip, segment,
});
const a1 = pod("a1", 3, "0a:bf:fd:fd:51:ac", "10.244.1.2", 100);
const a2 = pod("a2", 4, "0a:f1:1a:98:9f:0e", "10.244.1.3", 100);
const a3 = pod("a3", 5, "0a:a0:33:36:54:94", "10.244.1.4", 200);
const ctx: TraceContext = {
  pods: [a1, a2, a3],
  networks: [{ name: "podnet", netId: networkId("podnet"), peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }] }],
  gatewayPort: 1,
  tunnelPort: 2,
  from: a1,
};
const explain = (name: string, c: TraceContext = ctx) => explainTrace(parseTrace(fixture(name)), c);

t("parses both passes of a trace through conntrack: steps, cookies, actions, notes, final flow", () => {
  const p = parseTrace(fixture("same"));
  assert.is(p.passes.length, 2);
  const [first, resumed] = p.passes as [any, any];
  assert.equal(first.steps.map((s: any) => s.table), [0, 10, 20, 27]);
  assert.is(first.bridge, "br-int");
  assert.is(first.steps[0].match, "in_port=3");
  assert.is(first.steps[0].priority, 200);
  assert.is(first.steps[0].cookie, attachmentId("podnet", "ctr-a1", "eth0") | (0x6f7604n << 40n));
  assert.equal(first.steps[0].actions, ["load:0x64->NXM_NX_REG0[]", "goto_table:10"]);
  assert.equal(first.steps[3].actions, ["ct(table=28,zone=28534)", "drop"]);
  assert.ok(first.steps[3].notes[0].startsWith("A clone of the packet is forked"));
  assert.is(first.datapathActions, "ct(zone=28534),recirc(0x1)");
  assert.is(resumed.recirc, "recirc(0x1)");
  assert.is(resumed.ctState, "trk|new");
  assert.equal(resumed.steps.map((s: any) => s.table), [28, 30, 40]);
  assert.is(resumed.steps[0].match, "");
  assert.is(resumed.steps[2].match, "reg0=0x64,reg1=0x64");
  assert.equal(resumed.steps[2].notes, ["output port is 4"]);
  assert.is(resumed.finalFlow.reg2, "0x4");
  assert.is(resumed.flow.ct_state, "new|trk");
});

t("\"Final flow: unchanged\" is the pass's starting flow", () => {
  const p = parseTrace(fixture("node"));
  assert.equal(p.passes[0]!.finalFlow, p.passes[0]!.flow);
  assert.is(p.passes[0]!.flow.in_port, "1");
});

t("flow fields: bare words and key=value", () => {
  assert.equal(parseFlowFields("tcp,reg0=0x64,in_port=3"), { tcp: "", reg0: "0x64", in_port: "3" });
});

t("same segment on one node: delivered to a2", () => {
  const e = explain("same");
  assert.equal(e.verdict, { kind: "delivered", pod: "default/a2", port: 4 });
  assert.is(e.summary, "delivered to pod default/a2 (port 4)");
  assert.equal(e.steps.map((s) => s.tableName), ["classifier", "spoof guard", "ARP responder", "conntrack", "conntrack state", "L3 forwarding", "segment check"]);
  assert.equal(e.resumes, [{ pass: 1, ctState: "trk|new" }]);
  assert.is(e.steps[0]!.says, "from pod default/a1 (port 3): source segment 100");
  assert.is(e.steps[0]!.owner, "pod default/a1");
  assert.is(e.steps[6]!.owner, "segment 100");
  assert.match(e.steps[6]!.says, "both in segment 100 → output to pod default/a2 (port 4)");
});

t("cross segment: dropped in the segment check, naming both segments", () => {
  const e = explain("cross");
  assert.is(e.verdict.kind, "dropped");
  assert.is((e.verdict as any).table, 40);
  assert.is((e.verdict as any).tableName, "segment check");
  assert.match(e.summary, "pod in segment 100, destination in segment 200 → dropped");
  assert.match(e.steps[5]!.says, "destination is pod default/a3 (segment 200, port 5)");
});

t("cross node: sent over the tunnel to the peer with the source segment as VNI", () => {
  const e = explain("remote");
  assert.is(e.verdict.kind, "tunnel");
  const v = e.verdict as any;
  assert.is(v.peer, "198.18.0.2");
  assert.is(v.vni, 100);
  assert.is(v.podCIDR, "10.244.2.0/24");
  assert.match(v.note, "neighbor cache miss");
  assert.match(e.steps.find((s) => s.table === 30)!.owner!, "route to 10.244.2.0/24 via peer 198.18.0.2 (podnet)");
  assert.is(e.summary, "sent to node 198.18.0.2 over the tunnel, VNI 100 (its pod range 10.244.2.0/24)");
});

t("cross node with the underlay neighbour resolved: the br-phy steps are the underlay's, the verdict the same", () => {
  const e = explain("remote-resolved");
  assert.is(e.summary, "sent to node 198.18.0.2 over the tunnel, VNI 100 (its pod range 10.244.2.0/24)");
  assert.is((e.verdict as any).note, undefined);
  const under = e.steps.filter((s) => s.bridge === "br-phy");
  assert.is(under.length, 1);
  assert.is(under[0]!.says, "underlay bridge br-phy: NORMAL, forwarding to learned port");
  assert.is(under[0]!.tableName, "br-phy table 0");
  assert.match(e.datapathActions, "vni=0x64");
});

t("spoofed source IP: dropped by the spoof guard, naming the pod's own address", () => {
  const e = explain("spoof");
  assert.equal(e.steps.map((s) => s.table), [0, 10]);
  assert.is((e.verdict as any).tableName, "spoof guard");
  assert.match(e.summary, "pod default/a1 sent from MAC 0a:bf:fd:fd:51:ac, IP 10.244.1.250 (IP 10.244.1.250 is not 10.244.1.2)");
});

t("node to pod: committed in conntrack, allowed by the segment check, delivered", () => {
  const e = explain("node", { ...ctx, from: "node" });
  assert.equal(e.verdict, { kind: "delivered", pod: "default/a3", port: 5 });
  assert.is(e.steps[0]!.says, "from the node (gateway port 1): source segment 0");
  assert.match(e.steps.find((s) => s.table === 28)!.says, "committed (ct_mark 1)");
  assert.match(e.steps.find((s) => s.table === 40)!.says, "from the node (segment 0)");
});

t("pod to an outside address: handed to the node", () => {
  const e = explain("outside");
  assert.equal(e.verdict, { kind: "node", port: 1 });
  assert.match(e.steps.find((s) => s.table === 30)!.says, "handed to the node");
});

t("cookie owners", () => {
  const netId = networkId("podnet");
  assert.is(cookieOwner(NODE_COOKIE, ctx), "node defaults");
  assert.is(cookieOwner(segmentCookie(200), ctx), "segment 200");
  assert.is(cookieOwner(peerCookie(ipv4("198.18.0.2")), ctx), "peer 198.18.0.2");
  assert.is(cookieOwner(globalCookie(netId, 1), ctx), "global segment 1 (podnet)");
  assert.is(cookieOwner(routeCookie(netId, ipv4("198.18.0.2")), ctx), "route to 10.244.2.0/24 via peer 198.18.0.2 (podnet)");
  assert.is(cookieOwner(0x1234n, ctx), "not ovsplane's (cookie 0x1234)");
  assert.is(cookieOwner(undefined, ctx), undefined);
});

t("a table with no match (no miss flow) is a drop there", () => {
  const text = "Flow: ip,in_port=9\n\nbridge(\"br-int\")\n----------------\n 0. No match.\n    drop\n\nFinal flow: unchanged\nDatapath actions: drop\n";
  const e = explainTrace(parseTrace(text), ctx);
  assert.is(e.verdict.kind, "dropped");
  assert.match(e.summary, "port 9 is not a pod");
});

t("the trace's flow: protocol first, tcp_dst/udp_dst (ofproto/trace refuses tp_dst for UDP), ICMP echo", () => {
  const base = { inPort: 3, dlSrc: "0a:00:00:00:00:01", dlDst: "0a:00:00:00:00:02", nwSrc: "10.244.1.2" };
  assert.is(flowSpec({ ...base, proto: "udp", to: { ip: "10.244.2.2", port: 53 } }), "udp,in_port=3,dl_src=0a:00:00:00:00:01,dl_dst=0a:00:00:00:00:02,nw_src=10.244.1.2,nw_dst=10.244.2.2,udp_dst=53");
  assert.match(flowSpec({ ...base, proto: "tcp", to: { ip: "10.244.1.3", port: 80 } }), /^tcp,.*,tcp_dst=80$/);
  assert.match(flowSpec({ ...base, proto: "icmp", to: { ip: "10.244.1.3" } }), /^icmp,.*,icmp_type=8,icmp_code=0$/);
  assert.equal(parseTarget("10.244.1.3:8080"), { ip: "10.244.1.3", port: 8080 });
  assert.equal(parseTarget("10.244.1.3"), { ip: "10.244.1.3" });
  for (const bad of ["10.244.1", "10.244.1.300", "10.244.1.3:0", "10.244.1.3:70000", "web:80"]) assert.throws(() => parseTarget(bad), bad);
  assert.is(firstHost("10.244.1.0/24"), "10.244.1.1");
  assert.is(firstHost("10.244.1.77/24"), "10.244.1.1");
});

t.run();
