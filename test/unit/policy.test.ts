// Unit tests of lib/policy: selectors, policy types, peers, ports and ranges, ipBlock except, and the compiled flows (golden, conjunction sizes).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  ipBlockPrefixes, peerPods, policySelects, policyTypes, rangeMasks, resolvePort, selects, type NamespaceInfo, type PodInfo, type Policy,
} from "../../lib/policy/model.ts";
import { compilePolicies, fnv32, policyCookie, type LocalPod } from "../../lib/policy/compile.ts";
import { describeRule, parsePolicyReport, policyReport, policyRows } from "../../lib/policy/report.ts";
import { parseCookie, CookieKind, PolicyPriority, Table } from "../../lib/dataplane/pipeline.ts";
import { type Flow } from "../../lib/ovs/flow.ts";
import { renderFlow } from "../../lib/ovs/flow-text.ts";
import { encodeInstructions, encodeMatch } from "../../lib/ovs/oxm.ts";
import { decodeInstructions, decodeMatch } from "../../lib/ovs/oxm-decode.ts";

const GOLDEN = fileURLToPath(new URL("./golden/policy-flows.txt", import.meta.url));

test("selectors: matchLabels and the four operators; empty selects all", () => {
  const l = { app: "web", tier: "front" };
  assert.ok(selects({}, l));
  assert.ok(selects(undefined, {}));
  assert.ok(selects({ matchLabels: { app: "web" } }, l));
  assert.not.ok(selects({ matchLabels: { app: "db" } }, l));
  assert.ok(selects({ matchExpressions: [{ key: "app", operator: "In", values: ["db", "web"] }] }, l));
  assert.not.ok(selects({ matchExpressions: [{ key: "app", operator: "NotIn", values: ["web"] }] }, l));
  assert.ok(selects({ matchExpressions: [{ key: "x", operator: "NotIn", values: ["web"] }] }, l), "NotIn holds for a missing key");
  assert.ok(selects({ matchExpressions: [{ key: "tier", operator: "Exists" }] }, l));
  assert.not.ok(selects({ matchExpressions: [{ key: "tier", operator: "DoesNotExist" }] }, l));
  assert.not.ok(selects({ matchExpressions: [{ key: "tier", operator: "Bogus" }] }, l));
  assert.not.ok(selects({ matchLabels: { app: "web" }, matchExpressions: [{ key: "z", operator: "Exists" }] }, l), "all terms must hold");
});

test("policyTypes: Ingress always by default, Egress with egress rules; as given when listed", () => {
  const p = (x: Partial<Policy>): Policy => ({ namespace: "a", name: "p", podSelector: {}, ...x });
  assert.equal(policyTypes(p({})), ["Ingress"]);
  assert.equal(policyTypes(p({ egress: [] })), ["Ingress"]);
  assert.equal(policyTypes(p({ egress: [{}] })), ["Ingress", "Egress"]);
  assert.equal(policyTypes(p({ policyTypes: ["Egress"], ingress: [{}] })), ["Egress"]);
  assert.ok(policySelects(p({ podSelector: { matchLabels: { app: "x" } } }), { namespace: "a", labels: { app: "x" } }));
  assert.not.ok(policySelects(p({}), { namespace: "b", labels: {} }), "other namespace");
});

const pods: PodInfo[] = [
  { namespace: "a", name: "a1", labels: { app: "web" }, ip: "10.244.1.11", ports: [{ name: "http", port: 80, protocol: "TCP" }] },
  { namespace: "a", name: "a2", labels: { app: "db" }, ip: "10.244.1.12", ports: [{ name: "http", port: 8080, protocol: "TCP" }] },
  { namespace: "b", name: "b1", labels: { app: "web" }, ip: "10.244.2.21", ports: [{ name: "dns", port: 53, protocol: "UDP" }] },
  { namespace: "c", name: "c1", labels: { app: "web" }, ip: "10.244.2.31", ports: [] },
];
const namespaces: NamespaceInfo[] = [
  { name: "a", labels: { team: "x" } },
  { name: "b", labels: { team: "y" } },
  { name: "c", labels: { team: "y", env: "prod" } },
];
const nsLabels = new Map(namespaces.map((n) => [n.name, n.labels]));
const names = (ps: PodInfo[]) => ps.map((p) => `${p.namespace}/${p.name}`);

test("peers: podSelector (own namespace), namespaceSelector, both; ipBlock names no pods", () => {
  assert.equal(names(peerPods({ podSelector: { matchLabels: { app: "web" } } }, "a", pods, nsLabels)), ["a/a1"]);
  assert.equal(names(peerPods({ namespaceSelector: { matchLabels: { team: "y" } } }, "a", pods, nsLabels)), ["b/b1", "c/c1"]);
  assert.equal(names(peerPods({ namespaceSelector: {}, podSelector: { matchLabels: { app: "web" } } }, "a", pods, nsLabels)), ["a/a1", "b/b1", "c/c1"]);
  assert.equal(names(peerPods({ namespaceSelector: { matchLabels: { env: "prod" } }, podSelector: { matchLabels: { app: "web" } } }, "a", pods, nsLabels)), ["c/c1"]);
  assert.equal(peerPods({ ipBlock: { cidr: "10.0.0.0/8" } }, "a", pods, nsLabels), []);
});

test("ports: numbers, endPort ranges, named per pod and protocol, whole protocol", () => {
  assert.equal(resolvePort({ port: 80 }, undefined), { protocol: "TCP", from: 80, to: 80 });
  assert.equal(resolvePort({ protocol: "UDP", port: 1000, endPort: 1010 }, undefined), { protocol: "UDP", from: 1000, to: 1010 });
  assert.equal(resolvePort({ port: "http" }, pods[0]), { protocol: "TCP", from: 80, to: 80 });
  assert.equal(resolvePort({ port: "http" }, pods[1]), { protocol: "TCP", from: 8080, to: 8080 });
  assert.is(resolvePort({ port: "dns" }, pods[2]), undefined, "dns is UDP, the entry TCP");
  assert.equal(resolvePort({ port: "dns", protocol: "UDP" }, pods[2]), { protocol: "UDP", from: 53, to: 53 });
  assert.equal(resolvePort({ protocol: "SCTP" }, undefined), { protocol: "SCTP" });
});

test("port ranges as aligned blocks cover exactly the range", () => {
  for (const [lo, hi] of [[80, 80], [1000, 1010], [0, 65535], [32768, 60999], [1, 2], [8080, 8089]] as const) {
    const blocks = rangeMasks(lo, hi);
    const covered = new Set<number>();
    for (const b of blocks) for (let p = 0; p < 65536; p++) if ((p & b.mask) === b.value) covered.add(p);
    assert.is(covered.size, hi - lo + 1, `${lo}-${hi}`);
    assert.ok([...covered].every((p) => p >= lo && p <= hi), `${lo}-${hi} only`);
  }
  assert.equal(rangeMasks(1000, 1010), [{ value: 1000, mask: 0xfff8 }, { value: 1008, mask: 0xfffe }, { value: 1010, mask: 0xffff }]);
});

test("ipBlock except: disjoint prefixes covering the block less the excepts", () => {
  assert.equal(ipBlockPrefixes("10.0.0.0/24"), ["10.0.0.0/24"]);
  assert.equal(ipBlockPrefixes("10.0.0.0/24", ["10.0.0.128/25"]), ["10.0.0.0/25"]);
  assert.equal(ipBlockPrefixes("10.0.0.0/24", ["10.0.0.5/32"]), [
    "10.0.0.0/30", "10.0.0.4/32", "10.0.0.6/31", "10.0.0.8/29", "10.0.0.16/28", "10.0.0.32/27", "10.0.0.64/26", "10.0.0.128/25",
  ]);
  assert.equal(ipBlockPrefixes("10.0.0.0/24", ["10.0.0.0/16"]), []);
  assert.equal(ipBlockPrefixes("0.0.0.0/0", ["10.0.0.0/8"]).length, 8);
});

const local: LocalPod[] = [
  { ofport: 5, ip: "10.244.1.11", namespace: "a", name: "a1" },
  { ofport: 6, ip: "10.244.1.12", namespace: "a", name: "a2" },
];
const POLICIES: Policy[] = [
  // web in a: from namespaces team=y on TCP 80 and the named port http
  { namespace: "a", name: "web", podSelector: { matchLabels: { app: "web" } }, ingress: [{ peers: [{ namespaceSelector: { matchLabels: { team: "y" } } }], ports: [{ port: 80 }, { port: "http" }] }] },
  // all of a: egress only to 10.244.0.0/16 except 10.244.2.0/24, TCP 1000-1010
  { namespace: "a", name: "out", podSelector: {}, policyTypes: ["Egress"], egress: [{ peers: [{ ipBlock: { cidr: "10.244.0.0/16", except: ["10.244.2.0/24"] } }], ports: [{ port: 1000, endPort: 1010 }] }] },
  // db in a: named port http from anywhere (resolves to 8080 on a2)
  { namespace: "a", name: "db", podSelector: { matchLabels: { app: "db" } }, ingress: [{ ports: [{ port: "http" }] }] },
];

test("golden: the policy flows of two local pods under three policies", () => {
  const out = compilePolicies({ policies: POLICIES, pods, namespaces, local });
  const text = out.flows.map(renderFlow).join("\n") + "\n";
  if (process.env.UPDATE_GOLDEN === "1") writeFileSync(GOLDEN, text);
  assert.fixture(text, readFileSync(GOLDEN, "utf8"));
  assert.equal([...out.selected], [["a/a1", ["a/out", "a/web"]], ["a/a2", ["a/db", "a/out"]]]);
  assert.ok(out.flows.every((f) => parseCookie(f.cookie)?.kind === CookieKind.Policy));
});

test("every compiled flow encodes and decodes back (conjunction, conj_id, tcp_dst under a mask)", () => {
  for (const f of compilePolicies({ policies: POLICIES, pods, namespaces, local }).flows) {
    assert.equal(decodeMatch(encodeMatch(f.match)).match, f.match, renderFlow(f));
    assert.equal(decodeInstructions(encodeInstructions(f.actions)), f.actions, renderFlow(f));
  }
});

test("flows grow with the sum: 40 peers x 30 local pods x 5 ports is one conjunction of 75 clause flows", () => {
  const many: PodInfo[] = Array.from({ length: 70 }, (_, i) => ({ namespace: i < 30 ? "a" : "b", name: `p${i}`, labels: { app: i < 30 ? "web" : "client" }, ip: `10.244.${i < 30 ? 1 : 2}.${i + 10}`, ports: [] }));
  const loc: LocalPod[] = many.slice(0, 30).map((p, i) => ({ ofport: 10 + i, ip: p.ip!, namespace: "a", name: p.name }));
  const pol: Policy = { namespace: "a", name: "p", podSelector: {}, ingress: [{ peers: [{ namespaceSelector: { matchLabels: { team: "y" } } }], ports: [80, 81, 82, 83, 84].map((port) => ({ port })) }] };
  const out = compilePolicies({ policies: [pol], pods: many, namespaces, local: loc });
  const clauses = out.flows.filter((f) => f.actions[0]?.type === "conjunction");
  assert.is(clauses.length, 30 + 40 + 5);
  assert.is(out.rules.length, 1);
  // per pod: conntrack lookup, ingress drop; one conj_id flow
  assert.is(out.flows.length, 75 + 30 * 2 + 1);
});

test("shared clause flows carry every rule that names them; a rule with neither peers nor ports allows its pods outright", () => {
  const pol = (name: string, app: string): Policy => ({ namespace: "a", name, podSelector: { matchLabels: { app } }, ingress: [{ peers: [{ podSelector: { matchLabels: { app: "web" } } }], ports: [{ port: 80 }] }] });
  const out = compilePolicies({ policies: [pol("p1", "web"), pol("p2", "db")], pods, namespaces, local });
  const peer = out.flows.find((f) => f.table === Table.IngressRule && f.match.nw_src)!;
  assert.is(peer.actions.length, 2, renderFlow(peer));
  const all = compilePolicies({ policies: [{ namespace: "a", name: "open", podSelector: {}, ingress: [{}] }], pods, namespaces, local });
  const allow = all.flows.filter((f) => f.priority === PolicyPriority.AllowAll);
  assert.is(allow.length, 2);
  assert.ok(allow.every((f) => f.cookie === policyCookie("a", "open")));
  assert.equal(all.rules, [{ conjId: 0, policy: "a/open", direction: "Ingress", rule: 0 }]);
});

test("a local pod is a peer by its attachment's address before the API reports one", () => {
  const noIp = pods.map((p) => (p.name === "a2" ? { ...p, ip: undefined } : p));
  const pol: Policy = { namespace: "a", name: "p", podSelector: { matchLabels: { app: "web" } }, ingress: [{ peers: [{ podSelector: { matchLabels: { app: "db" } } }] }] };
  const out = compilePolicies({ policies: [pol], pods: noIp, namespaces, local });
  assert.ok(out.flows.some((f) => renderFlow(f).includes("nw_src=10.244.1.12")), "a2's attachment address");
});

test("a pod no policy selects has no policy flow; a policy selecting no local pod compiles to nothing", () => {
  const out = compilePolicies({ policies: [{ namespace: "b", name: "x", podSelector: {}, ingress: [] }], pods, namespaces, local });
  assert.equal(out.flows, []);
  assert.is(fnv32("a/web"), fnv32("a/web"));
});

test("egress named ports resolve on each destination pod, in one conjunction", () => {
  const pol: Policy = { namespace: "a", name: "e", podSelector: { matchLabels: { app: "web" } }, policyTypes: ["Egress"], egress: [{ peers: [{ namespaceSelector: {} }], ports: [{ port: "http" }] }] };
  const out = compilePolicies({ policies: [pol], pods, namespaces, local });
  assert.is(out.rules.length, 1, "one conjunction: the ports join the destinations' dimension");
  const dsts = out.flows.filter((f: Flow) => f.table === Table.EgressRule && f.match.nw_dst).map(renderFlow).sort();
  assert.equal(dsts.map((f) => f.replace(/ actions=.*/, "").replace(/.*cookie=0x[0-9a-f]+,/, "")), [
    "ip,nw_dst=10.244.1.11,nw_proto=6,tcp_dst=80", "ip,nw_dst=10.244.1.12,nw_proto=6,tcp_dst=8080",
  ], "http=80 on a1, http=8080 on a2; b1 and c1 have no TCP http");
});

test("report and rows: selection, rules by conj_id, allowed per policy and denied per pod from the counters", () => {
  const out = compilePolicies({ policies: POLICIES, pods, namespaces, local });
  const report = parsePolicyReport(JSON.stringify(policyReport(out)))!;
  assert.equal(report.selected, { "a/a1": ["a/out", "a/web"], "a/a2": ["a/db", "a/out"] });
  assert.is(report.cookies[`0x${policyCookie("a", "web").toString(16)}`], "a/web");
  const web = report.rules.find((r) => r.policy === "a/web")!;
  assert.is(describeRule(web), "a/web ingress rule 0");
  // counters: 7 packets through web's verdict flow, 3 dropped by a1's ingress isolation
  const entries = out.flows.map((flow) => ({
    flow,
    stats: { packets: flow.cookie === policyCookie("a", "web") ? 7n : flow.table === Table.IngressRule && flow.priority === PolicyPriority.Default && flow.match.reg2?.value === 5n ? 3n : 0n, bytes: 0n, durationSec: 0 },
  }));
  const ports = local.map((l) => ({ ofport: l.ofport, attachment: { network: "podnet", podNamespace: l.namespace, podName: l.name } }));
  const rows = policyRows("podnet", report, ports, entries);
  const a1 = rows.pods.find((p) => p.pod === "a/a1")!;
  assert.equal(a1.isolated, { ingress: true, egress: true });
  assert.equal(a1.denied, { ingress: 3, egress: 0 });
  assert.is(rows.policies.find((p) => p.policy === "a/web")!.allowed, 7);
  assert.is(parsePolicyReport("{}"), undefined);
});

test.run();
