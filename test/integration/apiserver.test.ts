// The fake kube-apiserver against two real clients: kubectl and @kubernetes/client-node 1.4.0 informers; raw wire checks; netns process mode.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api, KubeConfig, ListWatch, makeInformer, Watch, type V1Node, type V1Pod } from "@kubernetes/client-node";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { apiRequest, kubectl, kubectlWatch, openWatch, type Endpoint } from "../harness/apiserver/client.ts";
import { spawnApiServer, type ApiServerProcess } from "../harness/apiserver/process.ts";
import { ApiServer } from "../harness/apiserver/server.ts";
import { scoped } from "../harness/fixtures.ts";
import { createOutsideHost } from "../harness/outside.ts";
import { teardownAll } from "../harness/testbed.ts";

const t = suite("fake kube-apiserver");
let srv: ApiServer;
let ep: Endpoint;
let cache: string;
const k = (...args: string[]) => kubectl(srv.kubeconfigPath, cache, args);
const node = (name: string, ip: string, labels: Record<string, string> = {}) =>
  ({ metadata: { name, labels }, spec: { podCIDR: `10.244.${ip.split(".")[3]}.0/24` }, status: { addresses: [{ type: "InternalIP", address: ip }] } });
const pod = (name: string, ns: string, nodeName: string) =>
  ({ metadata: { name, namespace: ns }, spec: { nodeName, containers: [{ name: "c", image: "busybox" }] } });

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.before(async () => {
  cache = mkdtempSync("/tmp/ovsp-kubecache-");
  srv = await ApiServer.start({ bookmarkIntervalMs: 300 });
  ep = { url: srv.url, caFile: srv.caFile, token: srv.token };
  srv.upsert("nodes", node("n1", "198.18.0.1"));
  srv.upsert("nodes", node("n2", "198.18.0.2"));
  for (const ns of ["x", "y"]) srv.upsert("namespaces", { metadata: { name: ns } });
  srv.upsert("pods", pod("a1", "x", "n1"));
  srv.upsert("pods", pod("a2", "y", "n1"));
  srv.upsert("pods", pod("b1", "x", "n2"));
  srv.upsert("networkpolicies", { metadata: { name: "deny-all", namespace: "x" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } });
});

t.after(async () => {
  await srv?.stop();
  if (srv) rmSync(srv.dir, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
  await teardownAll();
});

t("wire: list items without kind, get with kind, RVs as decimal strings, Status on errors", async () => {
  const list = await apiRequest(ep, "GET", "/api/v1/nodes");
  assert.is(list.status, 200);
  assert.is(list.json.kind, "NodeList");
  assert.is(list.json.apiVersion, "v1");
  assert.match(list.json.metadata.resourceVersion, /^\d+$/);
  assert.equal(list.json.items.map((n: any) => [n.kind, n.metadata.name]), [[undefined, "n1"], [undefined, "n2"]]);
  const one = await apiRequest(ep, "GET", "/apis/networking.k8s.io/v1/namespaces/x/networkpolicies/deny-all");
  assert.is(one.json.kind, "NetworkPolicy");
  assert.is(one.json.apiVersion, "networking.k8s.io/v1");
  const missing = await apiRequest(ep, "GET", "/api/v1/namespaces/x/pods/nope");
  assert.is(missing.status, 404);
  assert.equal(missing.json, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: 'pods "nope" not found', reason: "NotFound", details: { name: "nope", kind: "pods" }, code: 404 });
  const anon = await apiRequest({ ...ep, token: undefined }, "GET", "/api/v1/nodes");
  assert.is(anon.status, 401);
  assert.is(anon.json.reason, "Unauthorized");
  assert.is((await apiRequest({ ...ep, token: "wrong" }, "GET", "/version")).status, 401);
  const bad = await apiRequest(ep, "GET", "/api/v1/pods?fieldSelector=spec.bogus%3D1");
  assert.is(bad.status, 400);
});

t("kubectl: get nodes/ns/pods -A with a field selector/netpol -A, label a namespace", async () => {
  const nodes = JSON.parse((await k("get", "nodes", "-o", "json")).stdout);
  assert.equal(nodes.items.map((n: any) => n.metadata.name), ["n1", "n2"]);
  assert.is(nodes.items[0].status.addresses[0].address, "198.18.0.1");
  const ns = (await k("get", "ns")).stdout;
  assert.match(ns, /^x\s/m);
  assert.match(ns, /^y\s/m);
  const pods = JSON.parse((await k("get", "pods", "-A", "--field-selector", "spec.nodeName=n1", "-o", "json")).stdout);
  assert.equal(pods.items.map((p: any) => `${p.metadata.namespace}/${p.metadata.name}`), ["x/a1", "y/a2"]);
  assert.match((await k("get", "netpol", "-A")).stdout, /^x\s+deny-all\s/m);
  const before = srv.store.get("namespaces", "x")!.metadata.resourceVersion;
  assert.match((await k("label", "ns", "x", "ovsplane.dev/segment=100")).stdout, /namespace\/x labeled/);
  const x = JSON.parse((await k("get", "ns", "x", "-o", "json")).stdout);
  assert.is(x.metadata.labels["ovsplane.dev/segment"], "100");
  assert.is(x.metadata.labels["kubernetes.io/metadata.name"], "x");
  assert.ok(Number(x.metadata.resourceVersion) > Number(before));
  assert.is(srv.store.get("namespaces", "x")!.metadata.labels!["ovsplane.dev/segment"], "100");
});

t("kubectl: a wrong token fails with Unauthorized", async () => {
  const r = await kubectl(srv.kubeconfigPath, cache, ["--token", "wrong", "get", "nodes"], true);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /Unauthorized/);
});

t("kubectl: get nodes -w --output-watch-events sees ADDED and MODIFIED made in process", scoped(async (s) => {
  const w = kubectlWatch(srv.kubeconfigPath, cache, ["get", "nodes", "-w", "--output-watch-events", "-o", "json"]);
  s.defer(() => w.stop());
  await w.waitFor((v) => v.type === "ADDED" && v.object?.metadata?.name === "n2");
  srv.upsert("nodes", node("n3", "198.18.0.3"));
  s.defer(() => srv.store.get("nodes", "n3") && srv.remove("nodes", "n3"));
  const added = await w.waitFor((v) => v.type === "ADDED" && v.object?.metadata?.name === "n3");
  assert.is(added.object.kind, "Node");
  srv.upsert("nodes", node("n3", "198.18.0.3", { zone: "a" }));
  const mod = await w.waitFor((v) => v.type === "MODIFIED" && v.object?.metadata?.name === "n3");
  assert.is(mod.object.metadata.labels.zone, "a");
}));

t("raw watch: events after an RV, bookmarks, timeoutSeconds, selector moves as ADDED/DELETED, 410 as an ERROR event", scoped(async (s) => {
  const rv = srv.store.resourceVersion;
  const w = await openWatch(ep, `/api/v1/pods?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true&timeoutSeconds=3&fieldSelector=spec.nodeName%3Dn1`);
  s.defer(() => w.close());
  assert.is(w.status, 200);
  srv.upsert("pods", pod("c1", "x", "n2")); // not n1's: invisible
  srv.upsert("pods", pod("c2", "x", "n1"));
  const added = await w.next((e) => e.type !== "BOOKMARK");
  assert.is(added.type, "ADDED");
  assert.is(added.object.metadata.name, "c2");
  assert.is(added.object.kind, "Pod");
  srv.upsert("pods", pod("c2", "x", "n2")); // moved away from n1: DELETED for this watch
  const gone = await w.next((e) => e.type !== "BOOKMARK");
  assert.equal([gone.type, gone.object.metadata.name], ["DELETED", "c2"]);
  const bm = await w.next((e) => e.type === "BOOKMARK");
  assert.equal(Object.keys(bm.object.metadata), ["resourceVersion"]);
  assert.is(bm.object.kind, "Pod");
  const t0 = Date.now();
  await w.ended;
  assert.ok(Date.now() - t0 < 3500, "the watch ends after timeoutSeconds");
  srv.remove("pods", "c1", "x");
  srv.remove("pods", "c2", "x");
  const initial = await openWatch(ep, "/api/v1/namespaces/x/pods?watch=true&timeoutSeconds=1");
  await initial.ended;
  assert.equal(initial.events.map((e) => `${e.type} ${e.object.metadata.name}`), ["ADDED a1", "ADDED b1"], "no RV: the current state as ADDED");
  srv.compact();
  const old = await openWatch(ep, `/api/v1/nodes?watch=1&resourceVersion=${rv}`);
  await old.ended;
  assert.is(old.status, 200);
  assert.equal(old.events, [{ type: "ERROR", object: {
    kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `too old resource version: ${rv} (${srv.store.resourceVersion})`, reason: "Expired", code: 410,
  } }]);
}));

/** A KubeConfig from the kubeconfig the server wrote. */
function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(srv.kubeconfigPath);
  return kc;
}

t("client-node: a node informer gets add, update, delete", scoped(async (s) => {
  const kc = kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const inf = makeInformer<V1Node>(kc, "/api/v1/nodes", () => core.listNode());
  const seen: string[] = [];
  inf.on("add", (n) => seen.push(`add ${n.metadata?.name}`));
  inf.on("update", (n) => seen.push(`update ${n.metadata?.name} ${n.metadata?.labels?.role ?? ""}`));
  inf.on("delete", (n) => seen.push(`delete ${n.metadata?.name}`));
  await inf.start();
  s.defer(() => inf.stop());
  await waitFor(() => seen.length >= 2, "the initial list");
  srv.upsert("nodes", node("n4", "198.18.0.4"));
  await waitFor(() => seen.includes("add n4"), "add n4");
  srv.upsert("nodes", node("n4", "198.18.0.4", { role: "edge" }));
  await waitFor(() => seen.includes("update n4 edge"), "update n4");
  srv.remove("nodes", "n4");
  await waitFor(() => seen.includes("delete n4"), "delete n4");
  assert.equal(seen, ["add n1", "add n2", "add n4", "update n4 edge", "delete n4"]);
  assert.equal(inf.list().map((n) => n.metadata?.name).sort(), ["n1", "n2"]);
}));

t("client-node: after an outage with compaction the informer relists (410) and converges", scoped(async (s) => {
  const kc = kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const inf = makeInformer<V1Node>(kc, "/api/v1/nodes", () => core.listNode());
  const seen: string[] = [];
  let errors = 0, stopped = false;
  inf.on("add", (n) => seen.push(`add ${n.metadata?.name}`));
  inf.on("delete", (n) => seen.push(`delete ${n.metadata?.name}`));
  // What the agent must do (the note): after any error but 410 the informer stops; start it again, with a delay.
  inf.on("error", () => {
    errors++;
    if (!stopped) setTimeout(() => void (stopped || inf.start()), 200);
  });
  await inf.start();
  s.defer(() => { stopped = true; return inf.stop(); });
  await waitFor(() => seen.length >= 2, "the initial list");
  const oldRv = (inf as unknown as ListWatch<V1Node>).latestResourceVersion(); // makeInformer returns a ListWatch
  await srv.stop();
  s.defer(() => srv.start());
  await waitFor(() => errors > 0, "an error from the cut watch");
  srv.upsert("nodes", node("n5", "198.18.0.5"));
  srv.remove("nodes", "n2");
  srv.compact();
  const lists = srv.requests.length;
  await srv.start();
  await waitFor(() => seen.includes("add n5") && seen.includes("delete n2"), "the relist after 410");
  assert.equal(inf.list().map((n) => n.metadata?.name).sort(), ["n1", "n5"]);
  const after = srv.requests.slice(lists).map((r) => r.url);
  const expired = after.indexOf(`/api/v1/nodes?watch=true&resourceVersion=${oldRv}`);
  assert.ok(expired >= 0, `a watch from the old RV ${oldRv}: ${JSON.stringify(after)}`);
  assert.ok(after.indexOf("/api/v1/nodes", expired) > expired, `a list after the 410: ${JSON.stringify(after)}`);
  srv.upsert("nodes", node("n2", "198.18.0.2"));
  srv.remove("nodes", "n5");
  await waitFor(() => seen.includes("delete n5") && seen.filter((x) => x === "add n2").length === 2, "the watch after the relist");
}));

t("client-node: a pod ListWatch with a field selector sees only its node's pods", scoped(async (s) => {
  const kc = kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const sel = "spec.nodeName=n1";
  const lw = new ListWatch<V1Pod>("/api/v1/pods", new Watch(kc), () => core.listPodForAllNamespaces({ fieldSelector: sel }), false, undefined, sel);
  const seen: string[] = [];
  lw.on("add", (p) => seen.push(`add ${p.metadata?.name}`));
  lw.on("delete", (p) => seen.push(`delete ${p.metadata?.name}`));
  await lw.start();
  s.defer(() => lw.stop());
  await waitFor(() => seen.length >= 2, "the initial list");
  srv.upsert("pods", pod("d2", "x", "n2"));
  srv.upsert("pods", pod("d1", "x", "n1"));
  s.defer(() => { for (const p of ["d1", "d2"]) if (srv.store.get("pods", p, "x")) srv.remove("pods", p, "x"); });
  await waitFor(() => seen.includes("add d1"), "add d1");
  srv.remove("pods", "d1", "x");
  await waitFor(() => seen.includes("delete d1"), "delete d1");
  assert.equal(seen, ["add a1", "add a2", "add d1", "delete d1"]);
  assert.ok(srv.requests.some((r) => r.url.includes("watch=true") && r.url.includes("fieldSelector=spec.nodeName%3Dn1")));
}));

t("process mode: a server in its own netns on the underlay, kubectl from another host's netns", scoped(async (s) => {
  const host = await createOutsideHost({ name: "apisrv", address: "198.18.0.200/24" });
  const client = await createOutsideHost({ name: "apicli", address: "198.18.0.101/24" });
  const dir = mkdtempSync("/tmp/ovsp-apiserver-proc-");
  s.defer(() => rmSync(dir, { recursive: true, force: true }));
  const p: ApiServerProcess = await spawnApiServer({ listen: "198.18.0.200:6443", dir, netns: host.netns });
  s.defer(() => p.close());
  assert.is(p.url, "https://198.18.0.200:6443");
  await p.upsert("nodes", node("remote", "198.18.0.9"));
  const kc = ["kubectl", "--kubeconfig", p.kubeconfig, "--cache-dir", join(dir, "cache")];
  const r = await client.exec([...kc, "get", "nodes", "-o", "json"], { timeoutMs: 30_000 });
  assert.equal(JSON.parse(r.stdout).items.map((n: any) => n.metadata.name), ["remote"]);
  assert.is(readFileSync(join(dir, "token"), "utf8").trim(), p.token);
  await p.stop();
  const down = await client.exec([...kc, "get", "nodes", "--request-timeout=3s"], { allowFail: true, timeoutMs: 30_000 });
  assert.is.not(down.code, 0);
  await p.start();
  await p.remove("nodes", "remote");
  const again = await client.exec([...kc, "get", "nodes", "-o", "json"], { timeoutMs: 30_000 });
  assert.equal(JSON.parse(again.stdout).items, []);
  await p.close();
  assert.not.ok(existsPid(p.pid), "the server process is gone");
}));

function existsPid(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.run();
