// NetworkPolicy truth table: two nodes with agents, five pods in three labelled namespaces; every ordered pair probed on TCP 80, 81 and UDP 5353 per policy set, against an independent model of the spec.
import { spawn, type ChildProcess } from "node:child_process";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { AgentBed, agentHttp, waitFor, type AgentRun } from "../harness/agentbed.ts";
import { sleep, type SimPod } from "../harness/testbed.ts";
import { readFlows } from "../../lib/node/flows.ts";
import { cookie, CookieKind, KIND_MASK } from "../../lib/dataplane/pipeline.ts";
import { BIN_DIR } from "./common.ts";
import { join } from "node:path";
import { killPid } from "../harness/netns.ts";
import { applyKubeProxy } from "../harness/kubeproxy.ts";
import { renderFlow } from "../../lib/ovs/flow-text.ts";
import { loudSetup } from "../harness/fixtures.ts";

const t = suite("networkpolicy truth table");
const bed = new AgentBed();

// ---- the independent model of the spec (deliberately not lib/policy) ------------------------------------

type Labels = Record<string, string>;
interface Sel { matchLabels?: Labels; matchExpressions?: { key: string; operator: string; values?: string[] }[] }
interface Peer { podSelector?: Sel; namespaceSelector?: Sel; ipBlock?: { cidr: string; except?: string[] } }
interface PortSpec { protocol?: string; port?: number | string; endPort?: number }
interface Rule { from?: Peer[]; to?: Peer[]; ports?: PortSpec[] }
interface NP { name: string; namespace: string; spec: { podSelector: Sel; policyTypes?: string[]; ingress?: Rule[]; egress?: Rule[] } }
interface P { ns: string; name: string; labels: Labels; node: "A" | "B"; named: Record<string, number>; ip?: string; pod?: SimPod }
type Probe = readonly ["TCP" | "UDP", number];
const PROBES: readonly Probe[] = [["TCP", 80], ["TCP", 81], ["UDP", 5353]];

const NS: Record<string, Labels> = { "np-a": { team: "a" }, "np-b": { team: "b" }, "np-c": { team: "c", env: "prod" } };
const PODS: P[] = [
  { ns: "np-a", name: "a1", labels: { app: "web" }, node: "A", named: { http: 80 } },
  { ns: "np-a", name: "a2", labels: { app: "db" }, node: "B", named: { http: 81 } },
  { ns: "np-b", name: "b1", labels: { app: "web" }, node: "A", named: { http: 81 } },
  { ns: "np-b", name: "b2", labels: { app: "client" }, node: "B", named: {} },
  { ns: "np-c", name: "c1", labels: { app: "client" }, node: "A", named: { http: 80 } },
];

const sel = (s: Sel | undefined, l: Labels): boolean =>
  Object.entries(s?.matchLabels ?? {}).every(([k, v]) => l[k] === v) &&
  (s?.matchExpressions ?? []).every((e) => {
    const has = e.key in l;
    return { In: has && !!e.values?.includes(l[e.key]!), NotIn: !(has && e.values?.includes(l[e.key]!)), Exists: has, DoesNotExist: !has }[e.operator] ?? false;
  });
const ipNum = (ip: string) => ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
const inCidr = (ip: string, cidr: string) => {
  const [base, len] = cidr.split("/");
  const size = 2 ** (32 - Number(len));
  return Math.floor(ipNum(ip) / size) === Math.floor(ipNum(base!) / size);
};
const peerOk = (peer: Peer, policyNs: string, o: P): boolean => {
  if (peer.ipBlock) return inCidr(o.ip!, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((e) => inCidr(o.ip!, e));
  if (peer.namespaceSelector ? !sel(peer.namespaceSelector, NS[o.ns]!) : o.ns !== policyNs) return false;
  return sel(peer.podSelector, o.labels);
};
const portOk = (ports: PortSpec[] | undefined, dst: P, [proto, port]: Probe): boolean =>
  !ports?.length ||
  ports.some((p) => (p.protocol ?? "TCP") === proto && (p.port === undefined || (typeof p.port === "number" ? port >= p.port && port <= (p.endPort ?? p.port) : dst.named[p.port] === port && proto === "TCP")));
const types = (np: NP) => np.spec.policyTypes ?? ["Ingress", ...(np.spec.egress?.length ? ["Egress"] : [])];
/** Does `self`'s isolation in direction dir let traffic with `other` through (dst the destination pod)? */
function dirOk(nps: readonly NP[], dir: "Ingress" | "Egress", self: P, other: P, dst: P, probe: Probe): boolean {
  const mine = nps.filter((np) => np.namespace === self.ns && sel(np.spec.podSelector, self.labels) && types(np).includes(dir));
  if (!mine.length) return true;
  return mine.some((np) => ((dir === "Ingress" ? np.spec.ingress : np.spec.egress) ?? []).some((r) => {
    const peers = dir === "Ingress" ? r.from : r.to;
    return (!peers?.length || peers.some((x) => peerOk(x, np.namespace, other))) && portOk(r.ports, dst, probe);
  }));
}
const expected = (nps: readonly NP[], s: P, d: P, probe: Probe) => dirOk(nps, "Egress", s, d, d, probe) && dirOk(nps, "Ingress", d, s, d, probe);

// ---- pods: a TCP echo on 80 and 81 and a UDP echo on 5353 each; probes run in parallel from each pod ------

const SERVER = `
import socket, threading
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", port)); s.listen(128)
    while True:
        c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
def echo(c):
    try:
        c.settimeout(3); c.sendall(c.recv(64))
    except Exception: pass
    finally: c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    while True:
        d, a = s.recvfrom(64); s.sendto(d, a)
for f, p in ((tcp, 80), (tcp, 81), (udp, 5353)): threading.Thread(target=f, args=(p,), daemon=True).start()
threading.Event().wait()
`;
const CLIENT = `
import json, socket, sys, threading
targets = json.loads(sys.argv[1]); out = [False] * len(targets)
def probe(i, ip, proto, port):
    for _ in range(2 if proto == "TCP" else 3):
        try:
            if proto == "TCP":
                with socket.create_connection((ip, port), timeout=1.2) as c:
                    c.settimeout(1.2); c.sendall(b"hi"); ok = c.recv(8) == b"hi"
            else:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                    c.settimeout(0.8); c.sendto(b"hi", (ip, port)); ok = c.recvfrom(8)[0] == b"hi"
            if ok:
                out[i] = True; return
        except Exception: pass
ts = [threading.Thread(target=probe, args=(i, *t)) for i, t in enumerate(targets)]
[x.start() for x in ts]; [x.join() for x in ts]
print(json.dumps(out))
`;

const servers: ChildProcess[] = [];
const agentOf = (p: P): AgentRun => bed.agents.find((a) => a.node === (p.node === "A" ? bed.A : bed.B))!;
const key = (s: P, d: P, [proto, port]: Probe) => `${s.name}->${d.name} ${proto}/${port}`;

/** Every ordered pair on every probe: the set of those that got through. */
async function matrix(): Promise<Set<string>> {
  const rows = await Promise.all(PODS.map(async (s) => {
    const targets = PODS.filter((d) => d !== s).flatMap((d) => PROBES.map((pr) => ({ d, pr })));
    const r = await s.pod!.exec(["python3", "-c", CLIENT, JSON.stringify(targets.map(({ d, pr }) => [d.ip, pr[0], pr[1]]))], { timeoutMs: 30_000 });
    const ok = JSON.parse(r.stdout) as boolean[];
    return targets.filter((_, i) => ok[i]).map(({ d, pr }) => key(s, d, pr));
  }));
  return new Set(rows.flat());
}
function want(nps: readonly NP[]): Set<string> {
  const out = new Set<string>();
  for (const s of PODS) for (const d of PODS) if (s !== d) for (const pr of PROBES) if (expected(nps, s, d, pr)) out.add(key(s, d, pr));
  return out;
}
const diff = (got: Set<string>, exp: Set<string>) => [
  ...[...exp].filter((k) => !got.has(k)).map((k) => `blocked but allowed by the spec: ${k}`),
  ...[...got].filter((k) => !exp.has(k)).map((k) => `passed but denied by the spec: ${k}`),
];

/** Polls the matrix until it equals the model's (the agents apply within 1 s; the deadline is generous). */
async function expectMatrix(nps: readonly NP[], what: string, ms = 12_000): Promise<void> {
  const exp = want(nps);
  const until = Date.now() + ms;
  let d: string[] = [];
  for (;;) {
    d = diff(await matrix(), exp);
    if (!d.length || Date.now() > until) break;
    await sleep(300);
  }
  assert.equal(d, [], `${what}: ${d.length} cells differ:\n  ${d.join("\n  ")}`);
}

let applied: NP[] = [];
/** Replaces the policies in the API with nps. */
async function setPolicies(nps: readonly NP[]): Promise<void> {
  for (const np of applied) if (!nps.some((n) => n.name === np.name && n.namespace === np.namespace)) await bed.api!.remove("networkpolicies", np.name, np.namespace);
  for (const np of nps) await bed.api!.upsert("networkpolicies", { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: np.name, namespace: np.namespace }, spec: np.spec });
  applied = [...nps];
}

async function upsertPod(p: P): Promise<void> {
  await bed.api!.upsert("pods", {
    metadata: { name: p.name, namespace: p.ns, labels: p.labels },
    spec: { nodeName: p.node === "A" ? "a" : "b", containers: [{ name: "c", image: "scratch", ports: Object.entries(p.named).map(([name, containerPort]) => ({ name, containerPort, protocol: "TCP" })) }] },
    ...(p.ip ? { status: { podIP: p.ip, podIPs: [{ ip: p.ip }] } } : {}),
  });
}

t.before(loudSetup(async () => {
  await bed.setup([{ metadata: { name: "default" } }, ...Object.entries(NS).map(([name, labels]) => ({ metadata: { name, labels } }))]);
  await bed.startAgents(["--gc-grace", "3600"]);
  await Promise.all(PODS.map(async (p) => {
    await upsertPod(p);
    ({ pod: p.pod, ip: p.ip } = await bed.addPod(agentOf(p).node, p.ns, p.name));
    await upsertPod(p);
    servers.push(spawn("ip", ["netns", "exec", p.pod.netns, "python3", "-c", SERVER], { stdio: "ignore" }));
  }));
  await sleep(300);
}));

t.after(async () => {
  for (const s of servers) s.kill();
  for (const p of PODS) await p.pod?.destroy();
  await bed.teardown();
});

const ip = (n: string) => PODS.find((p) => p.name === n)!.ip!;
const np = (namespace: string, name: string, spec: NP["spec"]): NP => ({ namespace, name, spec });

/** The policy sets of the table, built once the pods have addresses. */
const CASES: [string, () => NP[]][] = [
  ["no policy: everything reaches everything", () => []],
  ["deny all ingress in np-a", () => [np("np-a", "deny", { podSelector: {}, policyTypes: ["Ingress"] })]],
  ["np-a from namespace team=b", () => [np("np-a", "from-b", { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "b" } } }] }] })]],
  ["np-b web from clients in namespaces env=prod", () => [np("np-b", "web", {
    podSelector: { matchLabels: { app: "web" } }, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: "env", operator: "In", values: ["prod"] }] }, podSelector: { matchLabels: { app: "client" } } }] }],
  })]],
  ["np-a from 10.244.0.0/16 except b1", () => [np("np-a", "block", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "10.244.0.0/16", except: [`${ip("b1")}/32`] } }] }] })]],
  ["np-a on the named port http", () => [np("np-a", "named", { podSelector: {}, ingress: [{ ports: [{ port: "http" }] }] })]],
  ["np-b on TCP 81-90 and UDP 5353", () => [np("np-b", "range", { podSelector: {}, ingress: [{ ports: [{ protocol: "TCP", port: 81, endPort: 90 }, { protocol: "UDP", port: 5353 }] }] })]],
  ["egress only: a1 to np-b on TCP 80", () => [np("np-a", "egress", {
    podSelector: { matchLabels: { app: "web" } }, policyTypes: ["Egress"], egress: [{ to: [{ namespaceSelector: { matchLabels: { team: "b" } } }], ports: [{ port: 80 }] }],
  })]],
  ["np-b ingress from np-a, egress to np-c", () => [np("np-b", "both", {
    podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "a" } } }] }], egress: [{ to: [{ namespaceSelector: { matchLabels: { team: "c" } } }] }],
  })]],
  ["combined: several policies on the same pods", () => [
    np("np-a", "from-b", { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "b" } } }] }] }),
    np("np-a", "web-80", { podSelector: { matchLabels: { app: "web" } }, ingress: [{ ports: [{ port: 80 }] }] }),
    np("np-b", "egress", { podSelector: { matchLabels: { app: "client" } }, policyTypes: ["Egress"], egress: [{ to: [{ podSelector: {} }] }, { ports: [{ protocol: "UDP", port: 5353 }] }] }),
    np("np-c", "deny", { podSelector: {}, policyTypes: ["Ingress", "Egress"] }),
  ]],
];

for (const [name, nps] of CASES) {
  t(name, async () => {
    const set = nps();
    await setPolicies(set);
    await expectMatrix(set, name);
  });
}

t("policy flows grow with the sum of the sets (counted on both nodes under the combined set)", async () => {
  const counts = await Promise.all([bed.A, bed.B].map(async (n) => (await readFlows(n.ofSocket("br-int"), [{ cookie: cookie(CookieKind.Policy, 0n), mask: KIND_MASK }])).length));
  console.log(`policy flows under the combined set: node a ${counts[0]}, node b ${counts[1]}`);
  assert.ok(counts.every((c) => c > 0 && c < 100), String(counts));
});

t("ovsplanectl policies lists who selects each pod and counts; /metrics counts allowed per policy and denied per pod; trace names the rule that allowed a packet and the isolation that dropped one", async () => {
  const set = CASES.find(([n]) => n.startsWith("np-a from namespace"))![1]();
  await setPolicies(set);
  await expectMatrix(set, "from-b");
  const a = agentOf(PODS[0]!);
  const ctl = async (...args: string[]) => a.node.exec([join(BIN_DIR, "ovsplanectl"), ...args, "--conf-dir", a.confDir], { allowFail: true });
  const pol = await ctl("policies", "--json");
  assert.is(pol.code, 0, pol.stderr);
  const net = JSON.parse(pol.stdout).networks[0];
  const a1 = net.pods.find((p: any) => p.pod === "np-a/a1");
  assert.equal(a1?.policies, ["np-a/from-b"], pol.stdout);
  assert.equal(a1.isolated, { ingress: true, egress: false });
  assert.ok(a1.denied.ingress > 0, "the matrix's probes from np-c were dropped by a1's isolation");
  const p = net.policies.find((x: any) => x.policy === "np-a/from-b");
  assert.ok(p?.allowed > 0, "b1's probes were allowed by the rule");
  const metrics = (await agentHttp(a.node, "/metrics")).body;
  const metric = (labels: string) => Number(new RegExp(`^ovsplane_policy_packets\\{${labels}\\} (\\d+)`, "m").exec(metrics)?.[1] ?? -1);
  assert.ok(metric('verdict="allowed",policy="np-a/from-b"') > 0, metrics);
  assert.ok(metric('verdict="denied",pod="np-a/a1",direction="ingress"') > 0, metrics);
  const allowed = await ctl("trace", "--from", "np-b/b1", "--to", `${ip("a1")}:80`);
  assert.match(allowed.stdout, /allowed by np-a\/from-b ingress rule 0/, allowed.stdout);
  const denied = await ctl("trace", "--from", "np-c/c1", "--to", `${ip("a1")}:80`);
  assert.match(denied.stdout, /dropped by NetworkPolicy: policy isolation of np-a\/a1/, denied.stdout);
});

t("a reply of an allowed connection passes; a new connection the other way is refused", async () => {
  const set = CASES.find(([n]) => n.startsWith("np-b ingress"))![1]();
  await setPolicies(set);
  await expectMatrix(set, "both directions");
  const b1 = PODS.find((p) => p.name === "b1")!;
  const c1 = PODS.find((p) => p.name === "c1")!;
  const probe = async (s: P, d: P) => JSON.parse((await s.pod!.exec(["python3", "-c", CLIENT, JSON.stringify([[d.ip, "TCP", 80]])])).stdout)[0] as boolean;
  assert.ok(await probe(b1, c1), "b1 -> c1: egress allowed, the echo (a reply into ingress-isolated b1) comes back");
  assert.not.ok(await probe(c1, b1), "c1 -> b1: ingress of b1 allows only np-a");
});

t("a Service does not bypass a policy: through a ClusterIP (kube-proxy's DNAT in the node) a1 is reached from np-b only, on its node and from the other", async () => {
  const set = CASES.find(([n]) => n.startsWith("np-a from namespace"))![1]();
  await setPolicies(set);
  await expectMatrix(set, "from-b");
  const VIP = "10.96.0.10";
  const services = [{ name: "a1", namespace: "np-a", clusterIP: VIP, port: 80, protocol: "tcp" as const, endpoints: [{ ip: ip("a1"), port: 80 }] }];
  await Promise.all([bed.A, bed.B].map((n) => applyKubeProxy(n, { clusterCIDR: "10.244.0.0/16", services })));
  const viaService = async (n: string) => JSON.parse((await PODS.find((p) => p.name === n)!.pod!.exec(["python3", "-c", CLIENT, JSON.stringify([[VIP, "TCP", 80]])])).stdout)[0] as boolean;
  const got = Object.fromEntries(await Promise.all(["b1", "b2", "c1", "a2"].map(async (n) => [n, await viaService(n)] as const)));
  assert.equal(got, { b1: true, b2: true, c1: false, a2: false }, "np-b's pods through the Service; np-c's and np-a's refused");
});

/** Node A's policy flows as text, sorted. */
const policyFlowsA = async () => (await readFlows(bed.A.ofSocket("br-int"), [{ cookie: cookie(CookieKind.Policy, 0n), mask: KIND_MASK }])).map(renderFlow).sort();

t("enforcement holds across an agent restart (no policy flow touched) and an ovs-vswitchd restart (replayed with the rest)", async () => {
  const set = CASES.find(([n]) => n.startsWith("np-a from namespace"))![1]();
  await setPolicies(set);
  await expectMatrix(set, "before the restarts");
  const before = await policyFlowsA();
  assert.ok(before.length > 0);
  const old = bed.agents.findIndex((a) => a.node === bed.A);
  await killPid(bed.agents[old]!.child.pid!);
  bed.agents.splice(old, 1);
  const a = bed.startAgent(bed.A, ["--gc-grace", "3600"]);
  await waitFor("A's new agent ready", async () => (await agentHttp(a.node, "/readyz")).code === 200, 20_000);
  await sleep(1000); // its first reconciles
  assert.equal(await policyFlowsA(), before, "the new agent changed no policy flow");
  await expectMatrix(set, "after the agent restart", 3000);
  await bed.A.stopVswitchd();
  await bed.A.startVswitchd();
  await waitFor("A's policy flows replayed", async () => (await policyFlowsA()).length === before.length, 15_000);
  assert.equal(await policyFlowsA(), before);
  await expectMatrix(set, "after the ovs-vswitchd restart");
});

t("a label change flips reachability (polled, well within the deadline)", async () => {
  const set = CASES.find(([n]) => n.startsWith("np-b web"))![1]();
  await setPolicies(set);
  await expectMatrix(set, "before the relabel");
  const c1 = PODS.find((p) => p.name === "c1")!;
  const flowsBefore = (await policyFlowsA()).join("\n");
  c1.labels = { app: "other" };
  const t0 = Date.now();
  await upsertPod(c1);
  await waitFor("A's policy flows to change", async () => (await policyFlowsA()).join("\n") !== flowsBefore, 10_000);
  console.log(`  relabel: A's policy flows changed ${Date.now() - t0} ms after the Pod update`);
  await expectMatrix(set, "after c1 lost app=client");
  c1.labels = { app: "client" };
  await upsertPod(c1);
  await expectMatrix(set, "after c1 got app=client back");
  await setPolicies([]);
});

t.run();
