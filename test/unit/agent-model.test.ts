// Unit tests of the agent's pure model: node facts, peers, the conflist it writes, segments, node model, host spec, pod specs.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { V1Namespace, V1Node } from "@kubernetes/client-node";
import {
  agentConflist, agentHostSpec, agentNodeModel, gatewayOf, networkConfig, nodeFacts, peersOf, podFlowSpecs, segmentMap,
} from "../../lib/agent/model.ts";
import { desiredNodeFlows } from "../../lib/dataplane/model.ts";
import { podFlows, segmentFlows } from "../../lib/dataplane/builders.ts";
import { podCookie } from "../../lib/dataplane/pipeline.ts";
import { podFlowOps } from "../../lib/agent/ovs.ts";
import { attachmentId, gatewayMac, networkId } from "../../lib/dataplane/names.ts";

const node = (name: string, o: { podCIDR?: string; podCIDRs?: string[]; ip?: string; annotation?: string } = {}): V1Node => ({
  metadata: { name, ...(o.annotation ? { annotations: { "ovsplane.dev/tunnel-ip": o.annotation } } : {}) },
  spec: { ...(o.podCIDR ? { podCIDR: o.podCIDR } : {}), ...(o.podCIDRs ? { podCIDRs: o.podCIDRs } : {}) },
  status: { addresses: [{ type: "Hostname", address: name }, ...(o.ip ? [{ type: "InternalIP", address: o.ip }] : [])] },
});
const ns = (name: string, segment?: string): V1Namespace => ({ metadata: { name, ...(segment ? { labels: { "ovsplane.dev/segment": segment } } : {}) } });

const template = {
  cniVersion: "1.0.0",
  name: "podnet",
  plugins: [
    {
      type: "ovsplane", bridge: "br-int", segment: 1, globalSegments: [5], datapathType: "netdev",
      peers: [{ nodeIP: "198.18.0.9", podCIDR: "10.9.0.0/24" }],
      ipam: { type: "ovsplane-ipam", routes: [{ dst: "0.0.0.0/0" }] },
    },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
};

test("nodeFacts: podCIDRs over podCIDR, IPv4 only; annotation over the first IPv4 InternalIP", () => {
  assert.equal(nodeFacts(node("a", { podCIDR: "10.244.1.0/24", ip: "198.18.0.1" })), { name: "a", podCIDRs: ["10.244.1.0/24"], address: "198.18.0.1" });
  assert.equal(nodeFacts(node("a", { podCIDR: "10.0.0.0/8", podCIDRs: ["10.244.1.5/24", "fd00::/64"] })).podCIDRs, ["10.244.1.0/24"]);
  assert.is(nodeFacts(node("a", { ip: "198.18.0.1", annotation: "198.19.0.1" })).address, "198.19.0.1");
  assert.is(nodeFacts(node("a", { ip: "198.18.0.1", annotation: "bogus" })).address, "198.18.0.1");
  assert.equal(nodeFacts(node("a")), { name: "a", podCIDRs: [] });
  assert.equal(nodeFacts(node("a", { podCIDR: "not-a-cidr" })).podCIDRs, []);
});

test("peersOf: every other node with a range and an address, sorted by name", () => {
  const nodes = [
    node("c", { podCIDR: "10.244.3.0/24", ip: "198.18.0.3" }),
    node("a", { podCIDR: "10.244.1.0/24", ip: "198.18.0.1" }),
    node("b", { podCIDR: "10.244.2.0/24", ip: "198.18.0.2" }),
    node("d", { ip: "198.18.0.4" }),
    node("e", { podCIDR: "10.244.5.0/24" }),
  ];
  assert.equal(peersOf(nodes, "a"), [
    { nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" },
    { nodeIP: "198.18.0.3", podCIDR: "10.244.3.0/24" },
  ]);
});

test("agentConflist: undefined until range and address are known; facts filled, agent set, peers gone, template untouched", () => {
  assert.is(agentConflist(template, { name: "a", podCIDRs: [] , address: "198.18.0.1" }, "/run/x"), undefined);
  assert.is(agentConflist(template, { name: "a", podCIDRs: ["10.244.1.0/24"] }, "/run/x"), undefined);
  const c = agentConflist(template, { name: "a", podCIDRs: ["10.244.1.0/24"], address: "198.18.0.1" }, "/run/x")!;
  const p = (c.plugins as any[])[0];
  assert.equal(p.tunnel, { localIP: "198.18.0.1" });
  assert.equal(p.ipam, { type: "ovsplane-ipam", routes: [{ dst: "0.0.0.0/0" }], ranges: [[{ subnet: "10.244.1.0/24" }]] });
  assert.equal(p.agent, { stateDir: "/run/x" });
  assert.is(p.peers, undefined);
  assert.equal((c.plugins as any[])[1], template.plugins[1]);
  assert.ok(template.plugins[0]!.peers, "the template is not modified");
  const cfg = networkConfig(c);
  assert.is(cfg.name, "podnet");
  assert.is(cfg.datapathType, "netdev");
  assert.equal(cfg.globalSegments, [5]);
});

test("agentConflist: an invalid result throws; a template without ovsplane throws", () => {
  assert.throws(() => agentConflist({ ...template, plugins: [{ ...template.plugins[0], segment: 0 }] }, { name: "a", podCIDRs: ["10.244.1.0/24"], address: "198.18.0.1" }, "/s"), /segment/);
  assert.throws(() => agentConflist({ ...template, plugins: [{ type: "bridge" }] }, { name: "a", podCIDRs: ["10.244.1.0/24"], address: "198.18.0.1" }, "/s"), /no plugin of type ovsplane/);
});

test("segmentMap: label, else the default; kube-system gets the first global segment unless labelled; bad labels ignored", () => {
  const cfg = { segment: 1, globalSegments: [5, 6] };
  assert.equal(segmentMap([ns("default"), ns("kube-system"), ns("x", "100"), ns("y", "nope"), ns("z", "0")], cfg), {
    default: 1, "kube-system": 5, x: 100, y: 1, z: 1,
  });
  assert.equal(segmentMap([ns("kube-system", "7")], cfg), { "kube-system": 7 });
  assert.equal(segmentMap([ns("kube-system")], { segment: 3, globalSegments: [] }), { "kube-system": 3 });
  assert.equal(Object.keys(segmentMap([ns("b"), ns("a")], cfg)), ["a", "b"]);
});

test("gatewayOf: first usable address of the range, with its prefix", () => {
  assert.equal(gatewayOf("10.244.1.0/24"), { gatewayIP: "10.244.1.1", withPrefix: "10.244.1.1/24" });
});

test("agentNodeModel and agentHostSpec: one network with gateway, peers and global segments", () => {
  const c = agentConflist(template, { name: "a", podCIDRs: ["10.244.1.0/24"], address: "198.18.0.1" }, "/s")!;
  const cfg = networkConfig(c);
  const self = { name: "a", podCIDRs: ["10.244.1.0/24"], address: "198.18.0.1" };
  const peers = [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }];
  const m = agentNodeModel(cfg, { tunnel: 2, gateway: 3 }, self, peers);
  assert.equal(m, {
    ports: { tunnel: 2, gateway: 3, gatewayMAC: gatewayMac("br-int") },
    networks: [{ name: "podnet", gatewayIP: "10.244.1.1", peers, globalSegments: [5] }],
  });
  assert.ok(desiredNodeFlows(m).length > 0);
  const h = agentHostSpec(cfg, self, peers);
  assert.equal(h, {
    network: "podnet", netId: networkId("podnet"), gateways: ["10.244.1.1/24"], gatewayIP: "10.244.1.1", peers,
    podCIDRs: ["10.244.1.0/24"], clusterRanges: ["10.244.1.0/24", "10.244.2.0/24"], masquerade: true,
  });
});

test("podFlowSpecs: this network's ports with an IPv4 address and an ofport", () => {
  const a = { network: "podnet", containerID: "c1", ifname: "eth0", netns: "/n", segment: 100, ips: ["10.244.1.5/24"], mac: "0a:00:00:00:00:01" };
  const specs = podFlowSpecs("podnet", [
    { attachment: a, ofport: 7 },
    { attachment: { ...a, network: "other" }, ofport: 8 },
    { attachment: { ...a, containerID: "c2", ips: ["fd00::5/64"] }, ofport: 9 },
    { attachment: { ...a, containerID: "c3" }, ofport: -1 },
  ]);
  assert.equal(specs, [{ id: attachmentId("podnet", "c1", "eth0"), port: 7, ip: "10.244.1.5", mac: "0a:00:00:00:00:01", segment: 100 }]);
});

test("podFlowOps: writes missing and different flows of known cookies, leaves unknown cookies alone", () => {
  const pods = podFlowSpecs("podnet", [{ attachment: { network: "podnet", containerID: "c1", ifname: "eth0", netns: "/n", segment: 100, ips: ["10.244.1.5/24"], mac: "0a:00:00:00:00:01" }, ofport: 7 }]);
  const ports = { tunnel: 2, gateway: 3, gatewayMAC: gatewayMac("br-int") };
  const want = [...podFlows(pods[0]!, ports), ...segmentFlows(100)];
  assert.equal(podFlowOps([], want).map((o) => o.op), want.map(() => "add"));
  assert.equal(podFlowOps(want, want), []);
  const stranger = { ...podFlows({ ...pods[0]!, id: 99n, port: 9 }, ports)[0]!, cookie: podCookie(99n) };
  assert.equal(podFlowOps([...want, stranger], want), [], "another pod's flow is not the replay's to delete");
  const changed = { ...want[0]!, actions: [] };
  assert.equal(podFlowOps([changed, ...want.slice(1)], want), [{ op: "add", flow: want[0]! }]);
});

test.run();
