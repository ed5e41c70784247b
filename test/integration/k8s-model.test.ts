// The Kubernetes network model on two nodes with kube-proxy's iptables rules: Services, segments, global segments, node, NodePort, egress, host state.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connectNodes, createNode, runPlugin, teardownAll, testbed, type SimNode } from "../harness/testbed.ts";
import { scoped, type Scope } from "../harness/fixtures.ts";
import { applyKubeProxy, type KubeProxyService } from "../harness/kubeproxy.ts";
import {
  createOutsideHost, describeRequest, probeTcp, sniffSyns, tcpRequest, type NetnsTarget, type OutsideHost, type ProbeResult,
} from "../harness/outside.ts";
import { addPod, CNI_PATH, delPod, netConf, OVSPLANE, rmTemp, tempDir, type AttachedPod } from "./common.ts";

const t = suite("kubernetes network model");
const CLUSTER_CIDR = "10.244.0.0/16";
const GLOBAL = 1;
/** ClusterIPs (10.96.0.0/12): backend on A, on B, in segment 200 on A / on B, in the global segment, iperf3 on B. */
const SVC = { local: "10.96.0.10", remote: "10.96.0.11", a200: "10.96.0.12", b200: "10.96.0.13", global: "10.96.0.14", iperf: "10.96.0.20" };
const PORT = 80, TARGET = 8080, NODE_PORT = 30080, IPERF = 5201;
const dirs: string[] = [];
let A: SimNode, B: SimNode, O: OutsideHost;
let confA: Record<string, unknown>, confB: Record<string, unknown>;
const p: Record<string, AttachedPod> = {};

/** An ovsplane netconf of the model: default segment 100, global segment 1, plus extra. */
function k8sConf(node: SimNode, podCIDR: string, peers: { nodeIP: string; podCIDR: string }[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const dataDir = tempDir();
  dirs.push(dataDir);
  return netConf(node, { podCIDR, peers, dataDir, segment: 100, extra: { globalSegments: [GLOBAL], ...extra } });
}

function service(name: string, clusterIP: string, backend: AttachedPod, o: { port?: number; target?: number; nodePort?: number } = {}): KubeProxyService {
  const svc: KubeProxyService = { name, namespace: "default", clusterIP, port: o.port ?? PORT, protocol: "tcp", endpoints: [{ ip: backend.ip, port: o.target ?? TARGET }] };
  if (o.nodePort) svc.nodePort = o.nodePort;
  return svc;
}

/** Like a real node: a default route on the underlay (to a router that does not exist here), so the node can route to ClusterIPs. */
async function defaultRoute(node: SimNode): Promise<void> {
  await node.exec(["ip", "route", "replace", "default", "via", "198.18.0.254", "dev", node.underlayBridge]);
}

/** A fresh node of its own (own underlay address and pod range), kube-proxy's base rules applied. */
async function freshNode(name: string, n: number): Promise<SimNode> {
  const node = await createNode({ name, underlayIP: `198.18.0.${n}`, podCIDR: `10.244.${n}.0/24` });
  await testbed.attachUnderlay(node);
  await defaultRoute(node);
  await applyKubeProxy(node, { clusterCIDR: CLUSTER_CIDR, services: [] });
  return node;
}

/** Adds a pod for the length of a scoped test (DEL afterwards unless the test deleted it). */
function scopedPod(s: Scope, node: SimNode, conf: Record<string, unknown>, name: string, segment: number): Promise<AttachedPod> {
  return s.use(() => addPod(node, conf, name, segment), (x) => delPod(node, conf, x));
}

/** A probe through a Service: client -> clusterIP:PORT, the server listening on the target port. */
function svcProbe(client: NetnsTarget, server: NetnsTarget, clusterIP: string, o: { timeoutMs?: number } = {}): Promise<ProbeResult> {
  return probeTcp(client, server, clusterIP, PORT, { ...o, serverPort: TARGET });
}

function assertReached(r: ProbeResult, what: string, clientIP?: string): void {
  assert.ok(r.client.ok, `${what}: ${describeRequest(r.client)}`);
  assert.is(r.served.length, 1, `${what}: the backend accepted ${r.served.length} connections`);
  assert.is(r.client.reply, `peer ${r.served[0]!.peer}\n`, `${what}: the reply came from that backend`);
  if (clientIP) assert.is(r.served[0]!.peer, clientIP, `${what}: the backend saw the client as ${r.served[0]!.peer}, not as its own address ${clientIP} (NAT between pods)`);
}

function assertBlocked(r: ProbeResult, what: string): void {
  assert.not.ok(r.client.ok, `${what} must fail, but: ${describeRequest(r.client)}`);
  assert.is(r.served.length, 0, `${what}: the backend accepted a connection from ${r.served.map((c) => c.peer).join(", ")}`);
}

/** `ip route show <dst>` in node (one line or ""). */
async function routeTo(node: SimNode, dst: string): Promise<string> {
  return (await node.exec(["ip", "route", "show", dst])).stdout.trim();
}

async function iptablesSave(node: SimNode): Promise<string> {
  return (await node.exec(["iptables-save"])).stdout;
}

t.before(async () => {
  [A, B] = await Promise.all([createNode({ name: "a", underlayIP: "198.18.0.1" }), createNode({ name: "b", underlayIP: "198.18.0.2" })]);
  await connectNodes(A, B);
  await Promise.all([defaultRoute(A), defaultRoute(B)]);
  O = await createOutsideHost({ address: "198.18.0.100/24" });
  confA = k8sConf(A, "10.244.1.0/24", [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }]);
  confB = k8sConf(B, "10.244.2.0/24", [{ nodeIP: "198.18.0.1", podCIDR: "10.244.1.0/24" }]);
  const onA = async () => {
    for (const [n, seg] of [["a100", 100], ["a100s", 100], ["a200", 200], ["ag", GLOBAL]] as const) p[n] = await addPod(A, confA, n, seg);
  };
  const onB = async () => {
    for (const [n, seg] of [["b100", 100], ["b200", 200]] as const) p[n] = await addPod(B, confB, n, seg);
  };
  await Promise.all([onA(), onB()]);
  const services = [
    service("local", SVC.local, p.a100s!, { nodePort: NODE_PORT }), service("remote", SVC.remote, p.b100!),
    service("seg200-a", SVC.a200, p.a200!), service("seg200-b", SVC.b200, p.b200!), service("global", SVC.global, p.ag!),
    service("iperf", SVC.iperf, p.b100!, { port: IPERF, target: IPERF }),
  ];
  await Promise.all([A, B].map((n) => applyKubeProxy(n, { clusterCIDR: CLUSTER_CIDR, services })));
  // Warm the tunnel neighbours (the userspace datapath drops the first packet to a new one); not asserted here.
  await Promise.all([p.a100!.pod.ping(p.b100!.ip, { tries: 3 }), p.b200!.pod.ping(p.a200!.ip, { tries: 3 })]);
});

t.after(async () => {
  await teardownAll();
  dirs.forEach(rmTemp);
});

t("ClusterIP to a backend on the same node: end to end, the backend sees the client pod", async () => {
  assertReached(await svcProbe(p.a100!.pod, p.a100s!.pod, SVC.local), `a100 -> ${SVC.local}:${PORT} (a100s, same node)`, p.a100!.ip);
});

t("ClusterIP to a backend on another node: end to end, the backend sees the client pod", async () => {
  assertReached(await svcProbe(p.a100!.pod, p.b100!.pod, SVC.remote), `a100 -> ${SVC.remote}:${PORT} (b100, node B)`, p.a100!.ip);
});

t("ClusterIP hairpin: a backend reaches itself through its Service", async () => {
  // kube-proxy's KUBE-SEP `-s <endpoint> -j KUBE-MARK-MASQ` masquerades hairpin traffic: the peer is not asserted.
  assertReached(await svcProbe(p.a100s!.pod, p.a100s!.pod, SVC.local), `a100s -> ${SVC.local}:${PORT} (itself)`);
});

t("a Service whose backends are in another segment is unreachable, on one node and across nodes, with ip_forward=1", async () => {
  for (const n of [A, B]) assert.is((await n.exec(["sysctl", "-n", "net.ipv4.ip_forward"])).stdout.trim(), "1", `ip_forward on ${n.name}`);
  const [same, across] = await Promise.all([
    svcProbe(p.a100!.pod, p.a200!.pod, SVC.a200, { timeoutMs: 3000 }),
    svcProbe(p.a100!.pod, p.b200!.pod, SVC.b200, { timeoutMs: 3000 }),
  ]);
  assertBlocked(same, `a100 (segment 100) -> ${SVC.a200}:${PORT} (a200, segment 200, same node)`);
  assertBlocked(across, `a100 (segment 100) -> ${SVC.b200}:${PORT} (b200, segment 200, node B)`);
});

t("a global-segment pod reaches pods of both segments and is reached by them, directly", async () => {
  const g = p.ag!;
  const [toA100, toB200, fromA200, fromB100] = await Promise.all([
    probeTcp(g.pod, p.a100!.pod, p.a100!.ip, TARGET), probeTcp(g.pod, p.b200!.pod, p.b200!.ip, TARGET),
    probeTcp(p.a200!.pod, g.pod, g.ip, 8081), probeTcp(p.b100!.pod, g.pod, g.ip, 8082),
  ]);
  assertReached(toA100, "ag (global) -> a100 (segment 100, same node)", g.ip);
  assertReached(toB200, "ag (global) -> b200 (segment 200, node B)", g.ip);
  assertReached(fromA200, "a200 (segment 200) -> ag (global, same node)", p.a200!.ip);
  assertReached(fromB100, "b100 (segment 100, node B) -> ag (global)", p.b100!.ip);
});

t("a global-segment pod reaches Services of both segments and is reached through its Service", async () => {
  const g = p.ag!;
  const [toRemote, toB200, fromA100] = await Promise.all([
    svcProbe(g.pod, p.b100!.pod, SVC.remote), svcProbe(g.pod, p.b200!.pod, SVC.b200), svcProbe(p.a100!.pod, g.pod, SVC.global),
  ]);
  assertReached(toRemote, `ag (global) -> ${SVC.remote} (b100, segment 100, node B)`, g.ip);
  assertReached(toB200, `ag (global) -> ${SVC.b200} (b200, segment 200, node B)`, g.ip);
  assertReached(fromA100, `a100 (segment 100) -> ${SVC.global} (ag, global, same node)`, p.a100!.ip);
  assertReached(await svcProbe(p.b200!.pod, g.pod, SVC.global), `b200 (segment 200, node B) -> ${SVC.global} (ag, global)`, p.b200!.ip);
});

t("the node reaches pods on every node (ping and TCP) and Services", async () => {
  const ping = async (n: SimNode, ip: string): Promise<boolean> => {
    for (let i = 0; i < 3; i++) if ((await n.exec(["ping", "-n", "-q", "-c", "1", "-W", "1", ip], { allowFail: true })).code === 0) return true;
    return false;
  };
  const [pl, pr, pb] = await Promise.all([ping(A, p.a100!.ip), ping(A, p.b100!.ip), ping(B, p.a200!.ip)]);
  assert.ok(pl, `ping node A -> a100 ${p.a100!.ip} (local)`);
  assert.ok(pr, `ping node A -> b100 ${p.b100!.ip} (node B)`);
  assert.ok(pb, `ping node B -> a200 ${p.a200!.ip} (node A, segment 200)`);
  const [tl, tr] = await Promise.all([probeTcp(A, p.a100!.pod, p.a100!.ip, TARGET), probeTcp(A, p.b100!.pod, p.b100!.ip, TARGET)]);
  assertReached(tl, "TCP node A -> a100 (local)");
  assertReached(tr, "TCP node A -> b100 (node B)");
  assertReached(await svcProbe(A, p.b100!.pod, SVC.remote), `TCP node A -> ${SVC.remote} (b100, node B)`);
});

t("NodePort answers from the outside host on both nodes (backend only on A)", async () => {
  const viaA = await probeTcp(O, p.a100s!.pod, A.underlayIP, NODE_PORT, { serverPort: TARGET });
  const viaB = await probeTcp(O, p.a100s!.pod, B.underlayIP, NODE_PORT, { serverPort: TARGET });
  assertReached(viaA, `outside ${O.ip} -> node A ${A.underlayIP}:${NODE_PORT} (backend a100s on A)`);
  assertReached(viaB, `outside ${O.ip} -> node B ${B.underlayIP}:${NODE_PORT} (backend a100s on A)`);
});

t("egress to outside the pod ranges is masqueraded with the node's underlay address", async () => {
  const [fromA, fromB] = await Promise.all([probeTcp(p.a100!.pod, O, O.ip, 9000), probeTcp(p.b200!.pod, O, O.ip, 9001)]);
  assertReached(fromA, `a100 -> outside ${O.ip}:9000`, A.underlayIP);
  assertReached(fromB, `b200 -> outside ${O.ip}:9001`, B.underlayIP);
});

t("with masquerade: false, egress leaves with the pod's address (and, with no route back, fails)", scoped(async (s) => {
  const C = await freshNode("c", 3);
  const conf = k8sConf(C, "10.244.3.0/24", [], { masquerade: false });
  const c1 = await scopedPod(s, C, conf, "c1", 100);
  const sniffer = await sniffSyns(O, 9100, 4500);
  const r = await probeTcp(c1.pod, O, O.ip, 9100, { timeoutMs: 3000 });
  const seen = await sniffer.sources();
  assert.ok(seen.length > 0, `outside host saw no SYN to :9100 from c1 (${c1.ip}); client: ${describeRequest(r.client)}`);
  assert.equal([...new Set(seen)], [c1.ip], `outside host saw SYNs from ${seen.join(", ")}, expected only c1's own ${c1.ip} (not ${C.underlayIP})`);
  assert.not.ok(r.client.ok, `the outside host has no route back to ${c1.ip}, yet: ${describeRequest(r.client)}`);
}));

t("the very first TCP connection to a pod on another node succeeds on a fresh pair of nodes", scoped(async (s) => {
  const [E, F] = await Promise.all([freshNode("e", 5), freshNode("f", 6)]);
  await connectNodes(E, F);
  // With clusterCIDR given (the shared nodes use the fallback: own and peers' ranges): pod -> pod is not masqueraded.
  const confE = k8sConf(E, "10.244.5.0/24", [{ nodeIP: F.underlayIP, podCIDR: "10.244.6.0/24" }], { clusterCIDR: CLUSTER_CIDR });
  const confF = k8sConf(F, "10.244.6.0/24", [{ nodeIP: E.underlayIP, podCIDR: "10.244.5.0/24" }], { clusterCIDR: CLUSTER_CIDR });
  const [e1, f1] = await Promise.all([scopedPod(s, E, confE, "e1", 100), scopedPod(s, F, confF, "f1", 100)]);
  // One SYN retransmit at most: the client gives up after the first retransmission (~3 s).
  await e1.pod.exec(["sysctl", "-q", "-w", "net.ipv4.tcp_syn_retries=1"]);
  const r = await probeTcp(e1.pod, f1.pod, f1.ip, TARGET, { timeoutMs: 5000 });
  const icmp = r.client.error === "EHOSTUNREACH" || r.client.error === "ENETUNREACH" ? " (an ICMP error came back)" : "";
  assertReached(r, `first connection e1 (node e) -> f1 ${f1.ip}:${TARGET} (node f)${icmp}`, e1.ip);
}));

t("DEL of one pod leaves the other pods' Services, egress and routes working", scoped(async (s) => {
  const x = await scopedPod(s, A, confA, "a-extra", 100);
  const del = await delPod(A, confA, x);
  assert.is(del.code, 0, `DEL a-extra: ${del.stdout} ${del.stderr}`);
  assert.match(await routeTo(A, "10.244.2.0/24"), /dev ovsplane-gw/, "node A still routes node B's pod range through ovsplane-gw");
  assert.match(await iptablesSave(A), /:OVSPLANE-/, "node A still has its OVSPLANE chains");
  const [svc, egress] = await Promise.all([svcProbe(p.a100!.pod, p.b100!.pod, SVC.remote), probeTcp(p.a100!.pod, O, O.ip, 9002)]);
  assertReached(svc, `after DEL: a100 -> ${SVC.remote} (b100)`, p.a100!.ip);
  assertReached(egress, "after DEL: a100 -> outside", A.underlayIP);
}));

t("DEL keeps the network's host state (the node still reaches other nodes' pods); GC of its last pod removes its routes and OVSPLANE chains; foreign rules stay", scoped(async (s) => {
  const G = await freshNode("g", 7);
  const conf = k8sConf(G, "10.244.7.0/24", [{ nodeIP: "198.18.0.8", podCIDR: "10.244.8.0/24" }]);
  await G.exec(["iptables", "-t", "nat", "-N", "FOREIGN-KEEP"]);
  await G.exec(["iptables", "-t", "nat", "-A", "POSTROUTING", "-d", "192.0.2.0/24", "-m", "comment", "--comment", "foreign", "-j", "FOREIGN-KEEP"]);
  await G.exec(["iptables", "-t", "raw", "-A", "PREROUTING", "-d", "192.0.2.1", "-m", "comment", "--comment", "foreign", "-j", "NOTRACK"]);
  await G.exec(["ip", "route", "add", "192.0.2.0/24", "dev", "br-phy"]);
  const present = async (when: string) => {
    assert.match(await routeTo(G, "10.244.8.0/24"), /dev ovsplane-gw/, `${when}: route to the peer's pod range via ovsplane-gw`);
    assert.match(await iptablesSave(G), /:OVSPLANE-/, `${when}: OVSPLANE chains present`);
  };
  const gone = async (when: string) => {
    assert.is(await routeTo(G, "10.244.8.0/24"), "", `${when}: the route to the peer's pod range is removed`);
    const saved = await iptablesSave(G);
    const ours = saved.split("\n").filter((l) => /OVSPLANE|"?ovsplane"?/.test(l));
    assert.equal(ours, [], `${when}: no OVSPLANE chain or ovsplane-tagged rule left`);
    assert.match(saved, /-A POSTROUTING -d 192\.0\.2\.0\/24 .*-j FOREIGN-KEEP/, `${when}: the foreign nat rule is kept`);
    assert.match(saved, /-A PREROUTING -d 192\.0\.2\.1\/32 .*-j NOTRACK/, `${when}: the foreign raw rule is kept`);
    assert.match(saved, /:KUBE-SERVICES/, `${when}: kube-proxy's chains are kept`);
    assert.match(await routeTo(G, "192.0.2.0/24"), /dev br-phy/, `${when}: the foreign route is kept`);
  };
  const g1 = await scopedPod(s, G, conf, "g1", 100);
  const g2 = await scopedPod(s, G, conf, "g2", 200);
  await present("with two pods");
  assert.is((await delPod(G, conf, g1)).code, 0, "DEL g1");
  await present("after DEL of one of two pods");
  assert.is((await delPod(G, conf, g2)).code, 0, "DEL g2");
  await present("after DEL of the last pod (kept for the node's own traffic and the next pod)");
  const gc0 = await runPlugin({ bin: OVSPLANE, node: G, command: "GC", path: CNI_PATH, config: { ...conf, "cni.dev/valid-attachments": [] }, env: { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined } });
  assert.is(gc0.code, 0, `GC: ${gc0.stdout} ${gc0.stderr}`);
  await gone("after GC with no pod of the network left");
  await scopedPod(s, G, conf, "g3", 100);
  await present("after a new ADD");
  const gcConf = { ...conf, "cni.dev/valid-attachments": [] };
  const gc = await runPlugin({ bin: OVSPLANE, node: G, command: "GC", path: CNI_PATH, config: gcConf, env: { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined } });
  assert.is(gc.code, 0, `GC: ${gc.stdout} ${gc.stderr}`);
  await gone("after GC of the last pod");
}));

t("throughput pod -> Service -> pod on another node vs pod -> pod (printed, not asserted)", async () => {
  if ((await A.exec(["sh", "-c", "command -v iperf3"], { allowFail: true })).code !== 0) {
    console.log("iperf3 is not installed (apt-get install iperf3): throughput not measured");
    return;
  }
  const measure = async (client: NetnsTarget, ip: string): Promise<number | string> => {
    const srv = p.b100!.pod.exec(["iperf3", "-s", "-1", "-p", String(IPERF)], { allowFail: true, timeoutMs: 20_000 });
    await p.b100!.pod.exec(["sh", "-c", `for i in $(seq 50); do ss -Htln 'sport = :${IPERF}' | grep -q . && exit 0; sleep 0.05; done`], { allowFail: true });
    const r = await client.exec(["iperf3", "-c", ip, "-p", String(IPERF), "-t", "2", "-J", "--connect-timeout", "3000"], { allowFail: true, timeoutMs: 15_000 });
    let out: { error?: string; end?: { sum_received?: { bits_per_second: number } } } = {};
    try { out = JSON.parse(r.stdout); } catch { /* reported below */ }
    const bps = out.end?.sum_received?.bits_per_second;
    if (!bps) await tcpRequest(p.b100!.pod, "127.0.0.1", IPERF, { timeoutMs: 1000 }); // unblock a waiting server
    await srv;
    return bps ?? `failed: exit ${r.code}: ${out.error ?? (r.stdout.slice(0, 200) || r.stderr.trim())}`;
  };
  const viaService = await measure(p.a100!.pod, SVC.iperf);
  const direct = await measure(p.a100!.pod, p.b100!.ip);
  const fmt = (x: number | string): string => (typeof x === "number" ? `${(x / 1e9).toFixed(3)} Gbit/s` : x);
  console.log(`throughput a100 -> Service ${SVC.iperf}:${IPERF} -> b100 (node B): ${fmt(viaService)}`);
  console.log(`throughput a100 -> b100 ${p.b100!.ip}:${IPERF} directly:          ${fmt(direct)}`);
  assert.type(viaService, "number", `iperf3 a100 -> ${SVC.iperf}:${IPERF} (b100): ${viaService}`);
  assert.type(direct, "number", `iperf3 a100 -> ${p.b100!.ip}:${IPERF}: ${direct}`);
});

t.run();
