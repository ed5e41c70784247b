// Agent mode on one node: segments from the agent's segments.json, code 11 until it reports a namespace, node-wide state left to the agent.
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createNode, createPod, runPlugin, teardownAll, type PluginResult, type SimNode, type SimPod } from "../harness/testbed.ts";
import { leaseFiles, scoped, type Scope } from "../harness/fixtures.ts";
import { CNI_PATH, netConf, OVSPLANE, rmTemp, tempDir } from "./common.ts";
import { CookieKind, gatewayCookie, parseCookie, routeCookie } from "../../lib/dataplane/pipeline.ts";
import { GATEWAY_PORT, hostVethName, networkId, tunnelPortName } from "../../lib/dataplane/names.ts";
import { ROUTE_PROTO, routeMetric } from "../../lib/dataplane/hoststate.ts";
import { SEGMENTS_FILE } from "../../lib/plugin/segments.ts";

const t = suite("agent mode");
let N: SimNode;
let dataDir: string;
let stateDir: string;
let conf: Record<string, unknown>;
const NET_ID = networkId("podnet");

t.before(async () => {
  dataDir = tempDir();
  stateDir = mkdtempSync("/tmp/ovsp-agent-state-");
  N = await createNode({ name: "ag", underlayIP: "198.18.7.1" });
  // The conflist the agent writes: `agent` present, no `peers`.
  const { peers: _, ...c } = netConf(N, { podCIDR: "10.244.7.0/24", dataDir, segment: 5, extra: { mtu: 1450, agent: { stateDir } } });
  conf = c;
  writeSegments({ namespaces: { default: 100, other: 200 }, generation: 1 });
});

t.after(async () => {
  await teardownAll();
  rmTemp(dataDir);
  rmTemp(stateDir);
});

/** Writes segments.json as the agent does: temp file, then rename. */
function writeSegments(doc: unknown): void {
  const tmp = join(stateDir, `.${SEGMENTS_FILE}.tmp`);
  writeFileSync(tmp, JSON.stringify(doc));
  renameSync(tmp, join(stateDir, SEGMENTS_FILE));
}

/** A pod ADDed with the given CNI_ARGS (a namespace via K8S_POD_NAMESPACE); DEL and netns removal deferred on success. */
interface Added { name: string; pod: SimPod; containerID: string; host: string; r: PluginResult }

async function add(s: Scope, name: string, args: Record<string, string>): Promise<Added> {
  const pod = await createPod(name);
  s.defer(() => pod.destroy());
  const containerID = `ctr-${name}`;
  const r = await runPlugin({ bin: OVSPLANE, node: N, command: "ADD", containerID, netns: pod, args: { IgnoreUnknown: "1", K8S_POD_NAME: name, ...args }, path: CNI_PATH, config: conf });
  const a = { name, pod, containerID, host: hostVethName(containerID, "eth0"), r };
  if (r.code === 0) s.defer(() => del(a));
  return a;
}

/** add(), expecting success. */
async function added(s: Scope, name: string, args: Record<string, string>): Promise<Added> {
  const a = await add(s, name, args);
  assert.is(a.r.code, 0, `ADD ${name}: ${a.r.stdout} ${a.r.stderr}`);
  return a;
}

function del(a: Added): Promise<PluginResult> {
  return runPlugin({ bin: OVSPLANE, node: N, command: "DEL", containerID: a.containerID, netns: a.pod, args: "IgnoreUnknown=1", path: CNI_PATH, config: conf });
}

function gc(valid: Added[]): Promise<PluginResult> {
  const config = { ...conf, "cni.dev/valid-attachments": valid.map((a) => ({ containerID: a.containerID, ifname: "eth0" })) };
  return runPlugin({ bin: OVSPLANE, node: N, command: "GC", path: CNI_PATH, config, env: { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined } });
}

/** The `ovsplane-segment` tag of a pod's port. */
async function portSegment(a: Added): Promise<number> {
  return Number((await N.vsctl("get", "Port", a.host, "external_ids:ovsplane-segment")).replace(/"/g, ""));
}

/** The bridge's pod ports (the shared tunnel and gateway ports left out). */
const ports = async () => (await N.vsctl("list-ports", "br-int")).split("\n").filter((p) => p && p !== GATEWAY_PORT && p !== tunnelPortName(4789));
const linkExists = async (name: string) => (await N.exec(["ip", "link", "show", name], { allowFail: true })).code === 0;

/** ovsplane flows on the bridge by cookie kind, as "kind:id" strings (ids in hex). */
async function flowsByKind(): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const line of await N.dumpFlows("br-int")) {
    const m = /cookie=(0x[0-9a-f]+)/.exec(line);
    const c = m ? parseCookie(BigInt(m[1]!)) : undefined;
    if (!c) continue;
    out.set(c.kind, [...(out.get(c.kind) ?? []), c.id.toString(16)]);
  }
  return out;
}

/** Node-wide flows the agent would own (kinds Node, Peer, Gateway, Route, Global), as dumped lines. */
async function nodeWideFlows(): Promise<string[]> {
  const kinds = new Set<number>([CookieKind.Node, CookieKind.Peer, CookieKind.Gateway, CookieKind.Route, CookieKind.Global]);
  return (await N.dumpFlows("br-int")).filter((l) => {
    const m = /cookie=(0x[0-9a-f]+)/.exec(l);
    const c = m ? parseCookie(BigInt(m[1]!)) : undefined;
    return c !== undefined && kinds.has(c.kind);
  });
}

const PLANTED_ROUTE = routeCookie(NET_ID, 0xc6120702n); // to 198.18.7.2
const PLANTED_GW = gatewayCookie(NET_ID);

/** Plants node-wide flows as the agent would have written them (a route and a gateway flow), removed when the test ends. */
async function plantFlows(s: Scope): Promise<string[]> {
  await N.ofctl("add-flow", N.ofSocket("br-int"), `table=30,priority=100,cookie=0x${PLANTED_ROUTE.toString(16)},ip,nw_dst=10.244.9.0/24 actions=drop`);
  await N.ofctl("add-flow", N.ofSocket("br-int"), `table=20,priority=100,cookie=0x${PLANTED_GW.toString(16)},arp,arp_tpa=10.244.7.1 actions=drop`);
  s.defer(() => N.ofctl("del-flows", N.ofSocket("br-int"), `cookie=0x${PLANTED_ROUTE.toString(16)}/-1`));
  s.defer(() => N.ofctl("del-flows", N.ofSocket("br-int"), `cookie=0x${PLANTED_GW.toString(16)}/-1`));
  return nodeWideFlows();
}

/** The node's host state as ovsplane would write it: gateway addresses, proto 111 routes, our iptables chains, the bridge's fingerprints. */
async function hostState(): Promise<string> {
  const addrs = (await N.exec(["ip", "-4", "-o", "addr", "show", "dev", GATEWAY_PORT], { allowFail: true })).stdout.trim();
  const routes = (await N.exec(["ip", "route", "show", "proto", String(ROUTE_PROTO)])).stdout.trim();
  const chains = (await N.exec(["iptables-save"])).stdout.split("\n").filter((l) => l.includes("OVSPLANE")).join("\n");
  const ids = (await N.vsctl("br-get-external-id", "br-int")).split("\n").filter((l) => l.startsWith("ovsplane-host-")).join("\n");
  return [addrs, routes, chains, ids].join("\n--\n");
}

t("ADD takes the namespace's segment from segments.json; OVSPLANE_SEGMENT overrides; without K8S_POD_NAMESPACE the netconf's", scoped(async (s) => {
  const d = await added(s, "ns-default", { K8S_POD_NAMESPACE: "default" });
  const o = await added(s, "ns-other", { K8S_POD_NAMESPACE: "other" });
  const x = await added(s, "ns-override", { K8S_POD_NAMESPACE: "other", OVSPLANE_SEGMENT: "300" });
  const u = await added(s, "ns-unknown-override", { K8S_POD_NAMESPACE: "not-reported", OVSPLANE_SEGMENT: "400" });
  const plain = await added(s, "no-k8s", {});
  assert.equal(await Promise.all([d, o, x, u, plain].map(portSegment)), [100, 200, 300, 400, 5]);
  const segs = ((await flowsByKind()).get(CookieKind.Segment) ?? []).map((h) => parseInt(h, 16)).sort((a, b) => a - b);
  assert.equal(segs, [5, 100, 200, 300, 400], "one segment flow per segment");
  // The agent reports a new namespace: the next ADD in it succeeds (the file is read on every ADD).
  writeSegments({ namespaces: { default: 100, other: 200, late: 250 }, generation: 2 });
  try {
    assert.is(await portSegment(await added(s, "ns-late", { K8S_POD_NAMESPACE: "late" })), 250);
  } finally {
    writeSegments({ namespaces: { default: 100, other: 200 }, generation: 1 });
  }
}));

t("a namespace the agent has not reported, or no segments.json: code 11 naming the namespace, nothing left behind", scoped(async (s) => {
  await added(s, "keep", { K8S_POD_NAMESPACE: "default" }); // a working node: bridge, port, lease
  const before = { ports: await ports(), leases: leaseFiles(dataDir) };
  const check = async (a: Added, ns: string) => {
    assert.is(a.r.json?.code, 11, a.r.stdout);
    assert.ok(String(a.r.json?.msg).includes(`namespace ${ns}`), a.r.stdout);
    assert.equal(await ports(), before.ports, "no port left");
    assert.equal(leaseFiles(dataDir), before.leases, "no lease left");
    assert.not.ok(await linkExists(a.host), "no host veth left");
    assert.equal((await a.pod.exec(["ip", "-o", "link"])).stdout.split("\n").filter(Boolean).length, 1, "only lo in the pod");
  };
  await check(await add(s, "ns-third", { K8S_POD_NAMESPACE: "third" }), "third");
  renameSync(join(stateDir, SEGMENTS_FILE), join(stateDir, "away.json"));
  try {
    await check(await add(s, "no-file", { K8S_POD_NAMESPACE: "default" }), "default");
    writeFileSync(join(stateDir, SEGMENTS_FILE), '{"namespaces": {"default": "100"}}');
    await check(await add(s, "bad-file", { K8S_POD_NAMESPACE: "default" }), "default");
  } finally {
    renameSync(join(stateDir, "away.json"), join(stateDir, SEGMENTS_FILE));
  }
}));

t("ADD and DEL write no node-wide flows or host state, and leave the agent's alone", scoped(async (s) => {
  const state0 = await hostState();
  const planted = await plantFlows(s);
  assert.is(planted.length, 2, planted.join("\n"));
  const a = await added(s, "nw-a", { K8S_POD_NAMESPACE: "default" });
  const b = await added(s, "nw-b", { K8S_POD_NAMESPACE: "other" });
  assert.equal(await nodeWideFlows(), planted, "ADD wrote or removed no node-wide flow");
  const kinds = [...(await flowsByKind()).keys()].sort();
  assert.equal(kinds, [CookieKind.Segment, CookieKind.Pod, CookieKind.Gateway, CookieKind.Route].sort(), "only pod and segment flows besides the planted ones");
  assert.is(await hostState(), state0, "ADD wrote no host state");
  assert.ok(await linkExists(a.host) && (await N.exec(["ip", "-o", "link", "show", a.host])).stdout.includes("UP"), "host veth up");
  for (const p of [a, b]) {
    const r = await del(p);
    assert.is(r.code, 0, r.stdout);
    assert.equal(await nodeWideFlows(), planted, `DEL ${p.name} left the node-wide flows`);
  }
  assert.is(await hostState(), state0, "DEL wrote no host state");
  assert.not.ok((await flowsByKind()).has(CookieKind.Pod), "pod flows gone");
}));

t("GC removes stale pods only: the agent's network flows and host state stay, also with no pod of the network left", scoped(async (s) => {
  const planted = await plantFlows(s);
  // The agent's host state: gateway address, a route to a peer's pod range.
  const route = ["10.244.9.0/24", "dev", GATEWAY_PORT, "proto", String(ROUTE_PROTO), "metric", String(routeMetric(NET_ID))];
  const keep = await added(s, "gc-keep", { K8S_POD_NAMESPACE: "default" });
  const stale = await added(s, "gc-stale", { K8S_POD_NAMESPACE: "other" });
  await N.exec(["ip", "link", "set", GATEWAY_PORT, "up"]);
  await N.exec(["ip", "addr", "add", "10.244.7.1/24", "dev", GATEWAY_PORT]);
  s.defer(() => N.exec(["ip", "addr", "del", "10.244.7.1/24", "dev", GATEWAY_PORT], { allowFail: true }));
  await N.exec(["ip", "route", "add", ...route]);
  s.defer(() => N.exec(["ip", "route", "del", ...route], { allowFail: true }));
  const state0 = await hostState();
  assert.match(state0, /10\.244\.7\.1\/24/);
  assert.match(state0, /10\.244\.9\.0\/24/);
  const leases = leaseFiles(dataDir);
  const r1 = await gc([keep]);
  assert.is(r1.code, 0, r1.stdout);
  assert.equal(await ports(), [keep.host], "stale port removed, valid one kept");
  assert.not.ok(await linkExists(stale.host), "stale veth removed");
  assert.is(leaseFiles(dataDir).length, leases.length - 1, "stale lease released");
  assert.equal(await nodeWideFlows(), planted, "GC left the network flows");
  assert.is(await hostState(), state0, "GC left the host state");
  const r2 = await gc([]);
  assert.is(r2.code, 0, r2.stdout);
  assert.equal(await ports(), [], "last pod removed");
  assert.equal(await nodeWideFlows(), planted, "GC of the network's last pod left the network flows");
  assert.is(await hostState(), state0, "GC of the network's last pod left the host state");
  assert.equal(leaseFiles(dataDir), [], "leases released");
}));

t.run();
