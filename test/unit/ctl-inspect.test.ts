// Unit tests of ovsplanectl's pure inspection logic: flow owners by cookie, grouping and filters, pod flow checks, leases, health verdicts.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { encodeTags, PortRole, Tag, type Attachment } from "../../lib/dataplane/attachment.ts";
import { gatewayFlows, nodeFlows, peerFlows, podFlows, routeFlows, segmentFlows } from "../../lib/dataplane/builders.ts";
import { attachmentId, gatewayMac, networkId } from "../../lib/dataplane/names.ts";
import { cookie, COOKIE_MAGIC } from "../../lib/dataplane/pipeline.ts";
import { parseIpamConfig } from "../../lib/ipam/config.ts";
import { parseIp } from "../../lib/net/ip.ts";
import { parseConfig } from "../../lib/plugin/config.ts";
import type { Flow } from "../../lib/ovs/flow.ts";
import type { FlowEntry } from "../../lib/ovs/openflow.ts";
import type { Lease } from "../../lib/ipam/store.ts";
import { bridgeKey, flowOwner, leaseOf, podFlowState, podLabel, selectNetworks, type BridgeState, type NetworkConf, type NetworkLeases, type PortState } from "../../lib/ctl/node-state.ts";
import { groupFlows, ownerMatches } from "../../lib/ctl/commands/flows.ts";
import { leaseReport } from "../../lib/ctl/commands/leases.ts";
import { podRows } from "../../lib/ctl/commands/pods.ts";
import { buildStatus } from "../../lib/ctl/commands/status.ts";
import { outTo, pairs, table } from "../../lib/ctl/output.ts";

const t = suite("ctl inspect");

const rawConf = {
  cniVersion: "1.1.0",
  name: "podnet",
  type: "ovsplane",
  tunnel: { localIP: "198.18.0.1" },
  peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }],
  ipam: { type: "ovsplane-ipam", ranges: [[{ subnet: "10.244.1.0/29" }]], dataDir: "/tmp/none" },
};
const NET: NetworkConf = { file: "/etc/cni/net.d/10-ovsplane.conflist", conf: rawConf as any, cfg: parseConfig(rawConf as any) };

const att = (name: string, ip: string, segment: number): Attachment => ({
  network: "podnet", containerID: `ctr-${name}-0123456789abcdef`, ifname: "eth0", netns: "/x", segment, ips: [`${ip}/29`], mac: "0a:00:00:00:00:0" + ip.slice(-1), podNamespace: "default", podName: name,
});
const port = (a: Attachment, name: string, ofport: number): PortState => ({ uuid: name, name, externalIds: encodeTags(a), network: a.network, attachment: a, ofport });
const WEB = att("web-1", "10.244.1.2", 100);
const DB = att("db-1", "10.244.1.3", 200);
const PORTS = [port(WEB, "ovspweb", 3), port(DB, "ovspdb", 4)];
const GW_OF = 1;
const TUN_OF = 2;
const nodePorts = { tunnel: TUN_OF, gateway: GW_OF, gatewayMAC: gatewayMac("br-int") };
const netId = networkId("podnet");
const podSpec = (p: PortState) => ({ id: attachmentId("podnet", p.attachment!.containerID, "eth0"), port: p.ofport!, ip: p.attachment!.ips[0]!.split("/")[0]!, mac: p.attachment!.mac, segment: p.attachment!.segment });

const entry = (flow: Flow, packets = 0n): FlowEntry => ({ flow, stats: { packets, bytes: packets * 100n, durationSec: 1 } });
const ALL_FLOWS: FlowEntry[] = [
  ...nodeFlows(nodePorts),
  ...segmentFlows(100),
  ...segmentFlows(200),
  ...peerFlows("198.18.0.2", TUN_OF),
  ...gatewayFlows({ netId, gatewayIP: "10.244.1.1", gatewayMAC: nodePorts.gatewayMAC, gatewayPort: GW_OF }),
  ...routeFlows(netId, { nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }, nodePorts),
  ...podFlows(podSpec(PORTS[0]!), nodePorts),
  ...podFlows(podSpec(PORTS[1]!), nodePorts),
].map((f, i) => entry(f, BigInt(i % 3)));

const bridge = (over: Partial<BridgeState> = {}): BridgeState => ({
  bridge: "br-int", ovsdb: { ok: true }, vswitchd: { ok: true }, exists: true, datapathType: "system", ports: PORTS,
  shared: [
    { uuid: "g", name: "ovsplane-gw", externalIds: { [Tag.Role]: PortRole.Gateway }, ofport: GW_OF },
    { uuid: "t", name: "ovsp-vxlan", externalIds: { [Tag.Role]: PortRole.Tunnel }, ofport: TUN_OF },
  ],
  flows: ALL_FLOWS, versions: { ovs: "3.1.0" }, ...over,
});
const lease = (ip: string, containerID?: string, ifname?: string): Lease => ({ ip: parseIp(ip), path: `/tmp/none/podnet/${ip}`, mtimeMs: 0, ...(containerID ? { owner: { containerID, ...(ifname ? { ifname } : {}) } } : {}) });
const LEASES: NetworkLeases = { network: "podnet", dir: "/tmp/none/podnet", pools: parseIpamConfig(rawConf as any).rangeSets, leases: [lease("10.244.1.2", WEB.containerID, "eth0"), lease("10.244.1.3", DB.containerID, "eth0")] };

t("flowOwner names every kind of cookie", () => {
  const ctx = { ports: PORTS, networks: [NET] };
  const name = (f: Flow) => flowOwner(f.cookie, ctx).name;
  assert.is(name(nodeFlows(nodePorts)[0]!), "node (pipeline defaults)");
  assert.is(name(segmentFlows(100)[0]!), "segment 100");
  assert.is(name(peerFlows("198.18.0.2", TUN_OF)[0]!), "peer 198.18.0.2");
  assert.is(name(gatewayFlows({ netId, gatewayIP: "10.244.1.1", gatewayMAC: "0a:00:00:00:00:01", gatewayPort: 1 })[0]!), "gateway of network podnet");
  assert.is(name(routeFlows(netId, { nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }, nodePorts)[0]!), "route to 10.244.2.0/24 via 198.18.0.2 (network podnet)");
  assert.is(name(podFlows(podSpec(PORTS[0]!), nodePorts)[0]!), "pod default/web-1 (ctr ctr-web-1-01, eth0)");
  assert.equal(flowOwner(cookie(7, (netId << 32n) | 300n), ctx).name, "global segment 300 (network podnet)");
  assert.equal(flowOwner(cookie(4, 0xabcn), ctx).name, "pod without a port (id abc)");
  assert.is(flowOwner(0x1234n, ctx).kind, "unknown");
  assert.is(flowOwner((COOKIE_MAGIC << 48n) | (9n << 40n) | 0xabcn, ctx).name, "Service #abc (hash of namespace/name: dataplane/services.ts serviceId)");
  assert.is(flowOwner((COOKIE_MAGIC << 48n) | (0x7fn << 40n), ctx).kind, "unknown");
  // a route of a network not in the conf dir: its id, and no range
  assert.is(flowOwner(cookie(6, (0x5n << 32n) | 0xc6120002n), { ports: [], networks: [] }).name, "route via 198.18.0.2 (network #5)");
});

t("podLabel without pod name shows the container", () => {
  assert.is(podLabel({ containerID: "abcdef0123456789", ifname: "net1" }), "(ctr abcdef012345, net1)");
});

t("groupFlows: one group per owner, in kind order, counters summed; filters", () => {
  const ctx = { ports: PORTS, networks: [NET] };
  const g = groupFlows(ALL_FLOWS, ctx);
  assert.equal(g.map((x) => x.owner.kind), ["node", "segment", "segment", "peer", "pod", "pod", "gateway", "route"]);
  assert.equal(g.map((x) => x.owner.segment ?? null).slice(1, 3), [100, 200]);
  const total = ALL_FLOWS.reduce((s, e) => s + Number(e.stats.packets), 0);
  assert.is(g.reduce((s, x) => s + x.packets, 0), total);
  assert.is(g.find((x) => x.owner.kind === "pod")!.flows.length, podFlows(podSpec(PORTS[0]!), nodePorts).length);
  const tables = g[0]!.flows.map((f) => f.table);
  assert.equal(tables, [...tables].sort((a, b) => a - b), "flows sorted by table");
  assert.is(g[0]!.flows[0]!.tableName, "Classifier");
  assert.equal(groupFlows(ALL_FLOWS, ctx, { pod: "default/db-1" }).map((x) => x.owner.name), ["pod default/db-1 (ctr ctr-db-1-012, eth0)"]);
  assert.is(groupFlows(ALL_FLOWS, ctx, { pod: "ctr-web" }).length, 1, "container ID prefix");
  assert.is(groupFlows(ALL_FLOWS, ctx, { pod: "ovspweb" }).length, 1, "host veth");
  assert.equal(groupFlows(ALL_FLOWS, ctx, { segment: 100 }).map((x) => x.owner.kind), ["segment", "pod"]);
  assert.equal(groupFlows(ALL_FLOWS, ctx, { peer: "198.18.0.2" }).map((x) => x.owner.kind), ["peer", "route"]);
  assert.is(groupFlows(ALL_FLOWS, ctx, { network: "other" }).filter((x) => x.owner.network).length, 0, "another network keeps only bridge-wide flows");
  assert.not.ok(ownerMatches({ kind: "segment", key: "s", name: "s", segment: 1 }, { pod: "x" }));
});

t("podFlowState: complete, missing, unexpected; uncheckable without an OpenFlow port", () => {
  const ok = podFlowState(PORTS[0]!, GW_OF, "br-int", ALL_FLOWS);
  assert.equal({ ok: ok.ok, want: ok.want, have: ok.have, m: ok.missing, u: ok.unexpected }, { ok: true, want: 7, have: 7, m: [], u: [] });
  const fewer = ALL_FLOWS.filter((e) => !(e.flow.cookie === ALL_FLOWS.at(-1)!.flow.cookie && e.flow.table === 0));
  const db = podFlowState(PORTS[1]!, GW_OF, "br-int", fewer);
  assert.is(db.ok, false);
  assert.is(db.missing.length, 2);
  assert.match(db.missing[0]!, /^table=0,/);
  const moved = podFlowState({ ...PORTS[0]!, ofport: 9 }, GW_OF, "br-int", ALL_FLOWS);
  assert.is(moved.ok, false, "flows for another port number are not this port's");
  assert.ok(moved.unexpected.length > 0);
  assert.is(podFlowState({ ...PORTS[0]!, ofport: undefined } as PortState, GW_OF, "br-int", ALL_FLOWS).ok, false);
});

t("leaseOf matches address and owner (an old host-local lease without ifname too)", () => {
  assert.ok(leaseOf(WEB, LEASES.leases));
  assert.not.ok(leaseOf(WEB, [lease("10.244.1.2", "someone-else", "eth0")]));
  assert.not.ok(leaseOf(WEB, [lease("10.244.1.2", WEB.containerID, "eth1")]));
  assert.ok(leaseOf(WEB, [lease("10.244.1.2", WEB.containerID)]));
});

t("leaseReport: used and free per range, stale leases, unknown staleness without OVSDB", () => {
  const nl = { ...LEASES, leases: [...LEASES.leases, lease("10.244.1.6", "ctr-gone", "eth0"), lease("10.244.1.5"), lease("10.9.9.9", "x", "eth0")] };
  const r = leaseReport(nl, PORTS);
  // 10.244.1.0/29: .1 .. .6, gateway .1 excluded
  assert.equal(r.ranges, [{ set: 0, subnet: "10.244.1.0/29", rangeStart: "10.244.1.1", rangeEnd: "10.244.1.6", gateway: "10.244.1.1", size: 5, used: 4, free: 1 }]);
  const by = Object.fromEntries(r.leases.map((l) => [l.ip, l]));
  assert.equal([by["10.244.1.2"]!.stale, by["10.244.1.2"]!.port], [false, "ovspweb"]);
  assert.is(by["10.244.1.6"]!.stale, true);
  assert.is(by["10.244.1.5"]!.stale, true, "an empty lease file has no owner");
  assert.is(by["10.9.9.9"]!.range, undefined, "outside every range");
  assert.ok(leaseReport(nl, undefined).leases.every((l) => l.stale === null));
  assert.equal(leaseReport({ network: "n", pools: [], leases: [], error: "boom" }, PORTS).error, "boom");
});

t("podRows: healthy rows; missing lease and flows become problems", () => {
  const leases = new Map([["podnet", LEASES]]);
  const rows = podRows(bridge(), leases);
  assert.equal(rows.map((r) => [r.pod, r.ip, r.segment, r.ofport, r.flows.ok, r.lease.ok, r.problems]), [
    ["db-1", "10.244.1.3", 200, 4, true, true, []],
    ["web-1", "10.244.1.2", 100, 3, true, true, []],
  ]);
  const broken = podRows(bridge({ flows: ALL_FLOWS.filter((e) => e.flow.cookie !== ALL_FLOWS.at(-1)!.flow.cookie) }), new Map([["podnet", { ...LEASES, leases: LEASES.leases.slice(0, 1) }]]));
  const db = broken.find((r) => r.pod === "db-1")!;
  assert.equal([db.flows.ok, db.flows.have, db.lease.ok], [false, 0, false]);
  assert.is(db.problems.length, 2);
  assert.is(podRows(bridge(), new Map()).every((r) => r.lease.ok === null), true, "a network not in the conf dir: lease unknown");
  assert.is(podRows(bridge(), leases, new Set(["other"])).length, 0);
});

const statusOf = (b: BridgeState, over: { leases?: NetworkLeases; confProblems?: { file: string; why: string }[] } = {}) =>
  buildStatus({ confDir: "/etc/cni/net.d", files: ["10-ovsplane.conflist"], confProblems: over.confProblems ?? [], networks: [NET], bridges: new Map([[bridgeKey(NET.cfg), b]]), leases: new Map([["podnet", over.leases ?? LEASES]]) });

t("buildStatus: healthy node", () => {
  const r = statusOf(bridge());
  assert.equal(r.problems, []);
  assert.ok(r.healthy);
  const n = r.networks[0]!;
  assert.equal(n.peers, [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24", accepted: true, routed: true }]);
  assert.equal(n.segments, [{ segment: 100, pods: 1, flow: true }, { segment: 200, pods: 1, flow: true }]);
  assert.equal([n.tunnel, n.gateway], [{ name: "ovsp-vxlan", ofport: 2 }, { name: "ovsplane-gw", ofport: 1 }]);
  assert.equal(r.versions, { ovsplane: r.versions.ovsplane, ovs: "3.1.0" });
});

t("buildStatus: what makes a node unhealthy, and what only warns", () => {
  const down = statusOf(bridge({ vswitchd: { ok: false, error: "ECONNREFUSED" }, flows: [] }));
  assert.not.ok(down.healthy);
  assert.ok(down.problems.some((p) => /ovs-vswitchd does not serve br-int/.test(p)));
  const noDb = statusOf(bridge({ ovsdb: { ok: false, error: "ENOENT" }, exists: false, ports: [], shared: [], vswitchd: { ok: false }, flows: [] }));
  assert.ok(noDb.problems.some((p) => /OVSDB does not answer/.test(p)));
  const fresh = statusOf(bridge({ exists: false, ports: [], shared: [], vswitchd: { ok: false, error: "no such socket" }, flows: [] }), { leases: { ...LEASES, leases: [] } });
  assert.ok(fresh.healthy, JSON.stringify(fresh.problems));
  assert.ok(fresh.warnings.some((w) => /does not exist yet/.test(w)));
  const noPeer = statusOf(bridge({ flows: ALL_FLOWS.filter((e) => flowOwner(e.flow.cookie, { ports: [], networks: [] }).kind !== "peer") }));
  assert.equal(noPeer.problems, ["network podnet: no flow accepts tunnel traffic from peer 198.18.0.2"]);
  const noSeg = statusOf(bridge({ flows: ALL_FLOWS.filter((e) => e.flow.cookie !== segmentFlows(200)[0]!.cookie) }));
  assert.equal(noSeg.problems, ["network podnet: segment 200's flow is missing"]);
  const netdev = statusOf(bridge({ datapathType: "netdev" }));
  assert.ok(netdev.healthy && netdev.warnings.some((w) => /datapath netdev/.test(w)));
  assert.not.ok(statusOf(bridge(), { confProblems: [{ file: "/x/99.conflist", why: "not JSON" }] }).healthy);
  assert.not.ok(buildStatus({ confDir: "/d", files: [], confProblems: [], networks: [], bridges: new Map(), leases: new Map() }).healthy);
});

t("buildStatus: the agent's health (required in agent mode, shown when it runs)", () => {
  const base = { confDir: "/etc/cni/net.d", files: ["10-ovsplane.conflist"], confProblems: [], bridges: new Map([[bridgeKey(NET.cfg), bridge()]]), leases: new Map([["podnet", LEASES]]) };
  const absent = { listen: "127.0.0.1:9109", running: false, ready: false, detail: "ECONNREFUSED" };
  assert.ok(buildStatus({ ...base, networks: [NET], agent: absent }).healthy, "static mode needs no agent");
  const agentNet = { ...NET, cfg: { ...NET.cfg, agent: { stateDir: "/var/run/ovsplane" } } };
  const missing = buildStatus({ ...base, networks: [agentNet], agent: absent });
  assert.not.ok(missing.healthy);
  assert.ok(missing.problems.some((p) => /ovsplane-agent does not answer on 127\.0\.0\.1:9109/.test(p)));
  const notReady = buildStatus({ ...base, networks: [agentNet], agent: { ...absent, running: true, detail: "API not synced" } });
  assert.ok(notReady.problems.some((p) => /not ready: API not synced/.test(p)));
  assert.ok(buildStatus({ ...base, networks: [agentNet], agent: { ...absent, running: true, ready: true } }).healthy);
});

t("selectNetworks picks by --network, refuses an unknown one", () => {
  assert.is(selectNetworks([NET]).length, 1);
  assert.is(selectNetworks([NET], "podnet")[0], NET);
  assert.throws(() => selectNetworks([NET], "nope"), /no ovsplane network "nope" \(found: podnet\)/);
  assert.throws(() => selectNetworks([]), /no ovsplane network in the conf dir/);
});

t("table and pairs align columns; no colour off a terminal", () => {
  const lines: string[] = [];
  const out = { ...outTo({ write: () => true } as any, {}), line: (s = "") => void lines.push(s) };
  assert.is(out.color, false);
  table(out, ["A", "BB"], [["xxx", "y"]]);
  pairs(out, [["k", "v"], ["long", "w"]], "  ");
  assert.equal(lines, ["A    BB", "xxx  y", "  k     v", "  long  w"]);
});

t.run();
