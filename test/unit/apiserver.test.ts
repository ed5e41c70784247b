// Unit tests of the fake API server's store: resourceVersions, history and 410, selectors, patches, status scoping.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ApiError } from "../harness/apiserver/resources.ts";
import { jsonPatch, mergePatch, parseFieldSelector, parseLabelSelector } from "../harness/apiserver/selectors.ts";
import { Store, type KObject, type StoreEvent } from "../harness/apiserver/store.ts";

const t = suite("fake apiserver store");

const pod = (name: string, node: string, ns = "default", labels: Record<string, string> = {}): Record<string, unknown> =>
  ({ metadata: { name, namespace: ns, labels }, spec: { nodeName: node } });

function throwsCode(fn: () => unknown, code: number, reason?: string): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, ApiError);
    assert.is((e as ApiError).code, code);
    if (reason) assert.is((e as ApiError).reason, reason);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

t("create sets uid, creationTimestamp, kind/apiVersion and a fresh global resourceVersion", () => {
  const s = new Store();
  const rv0 = Number(s.resourceVersion);
  const n = s.create("nodes", { metadata: { name: "n1" } });
  const p = s.create("networkpolicies", { metadata: { name: "np", namespace: "x" }, spec: {} });
  assert.is(n.kind, "Node");
  assert.is(n.apiVersion, "v1");
  assert.is(p.apiVersion, "networking.k8s.io/v1");
  assert.is(p.metadata.generation, 1);
  assert.match(n.metadata.uid ?? "", /^[0-9a-f-]{36}$/);
  assert.match(n.metadata.creationTimestamp ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.is(n.metadata.resourceVersion, String(rv0 + 1));
  assert.is(p.metadata.resourceVersion, String(rv0 + 2));
  assert.is(s.resourceVersion, String(rv0 + 2));
  throwsCode(() => s.create("nodes", { metadata: { name: "n1" } }), 409, "AlreadyExists");
  throwsCode(() => s.create("nodes", { metadata: {} }), 422, "Invalid");
});

t("namespaces get their name label, finalizer and Active phase", () => {
  const s = new Store();
  const ns = s.create("namespaces", { metadata: { name: "x", labels: { "ovsplane.dev/segment": "100" } } });
  assert.equal(ns.metadata.labels, { "ovsplane.dev/segment": "100", "kubernetes.io/metadata.name": "x" });
  assert.equal(ns.spec, { finalizers: ["kubernetes"] });
  assert.equal(ns.status, { phase: "Active" });
});

t("update: resourceVersion precondition, uid kept, no-op writes keep the RV, status scoping", () => {
  const s = new Store();
  const n = s.create("nodes", { metadata: { name: "n1" }, spec: { podCIDR: "10.244.1.0/24" }, status: { addresses: [] } });
  throwsCode(() => s.update("nodes", { ...n, metadata: { ...n.metadata, resourceVersion: "1" } }), 409, "Conflict");
  throwsCode(() => s.update("nodes", { metadata: { name: "zz" } }), 404, "NotFound");
  const same = s.update("nodes", n);
  assert.is(same.metadata.resourceVersion, n.metadata.resourceVersion);
  const main = s.update("nodes", { metadata: { name: "n1", labels: { a: "b" } }, spec: { podCIDR: "10.244.9.0/24" }, status: { phase: "x" } });
  assert.is(main.metadata.uid, n.metadata.uid);
  assert.equal(main.status, { addresses: [] }, "a main-resource write keeps the stored status");
  const st = s.update("nodes", { metadata: { name: "n1", labels: { a: "b" } }, spec: { podCIDR: "bogus" }, status: { phase: "y" } }, undefined, "status");
  assert.equal(st.spec, { podCIDR: "10.244.9.0/24" }, "a status write keeps the spec");
  assert.equal(st.status, { phase: "y" });
  assert.ok(Number(st.metadata.resourceVersion) > Number(main.metadata.resourceVersion));
});

t("history: events after an RV, per resource; DELETED carries the deletion's RV; bounded history and compact give expired", () => {
  const s = new Store({ historyLimit: 3 });
  const seen: StoreEvent[] = [];
  s.subscribe((e) => seen.push(e));
  const start = Number(s.resourceVersion);
  s.upsert("nodes", { metadata: { name: "n1" } });
  s.upsert("namespaces", { metadata: { name: "x" } });
  s.upsert("nodes", { metadata: { name: "n1", labels: { a: "b" } } });
  const del = s.delete("nodes", "n1");
  assert.equal(seen.map((e) => `${e.type} ${e.resource} ${e.rv}`), [
    `ADDED nodes ${start + 1}`, `ADDED namespaces ${start + 2}`, `MODIFIED nodes ${start + 3}`, `DELETED nodes ${start + 4}`,
  ]);
  assert.is(del.metadata.resourceVersion, String(start + 4));
  assert.is(seen[3]!.previous?.metadata.resourceVersion, String(start + 3));
  const since = s.eventsSince("nodes", start + 2);
  assert.ok(since !== "expired");
  assert.equal((since as StoreEvent[]).map((e) => e.type), ["MODIFIED", "DELETED"]);
  assert.is(s.eventsSince("nodes", start), "expired", "the first event fell out of a history of 3");
  assert.ok(s.eventsSince("nodes", start + 1) !== "expired");
  s.compact();
  assert.is(s.eventsSince("nodes", start + 3), "expired");
  assert.equal(s.eventsSince("nodes", start + 4), [], "a watch from the current RV is still fine");
});

t("deleting a namespace deletes its objects first", () => {
  const s = new Store();
  s.upsert("namespaces", { metadata: { name: "x" } });
  s.upsert("pods", pod("p1", "n1", "x"));
  s.upsert("pods", pod("p2", "n1", "y"));
  const types: string[] = [];
  s.subscribe((e) => types.push(`${e.type} ${e.resource}`));
  s.delete("namespaces", "x");
  assert.equal(types, ["DELETED pods", "DELETED namespaces"]);
  assert.equal(s.list("pods").items.map((p) => p.metadata.name), ["p2"]);
});

t("list: namespace filter, sorted, list RV is the store's", () => {
  const s = new Store();
  s.upsert("pods", pod("b", "n1", "x"));
  s.upsert("pods", pod("a", "n2", "x"));
  s.upsert("pods", pod("c", "n1", "y"));
  assert.equal(s.list("pods").items.map((p) => p.metadata.name), ["a", "b", "c"]);
  assert.equal(s.list("pods", "y").items.map((p) => p.metadata.name), ["c"]);
  assert.is(s.list("pods").resourceVersion, s.resourceVersion);
  throwsCode(() => s.create("pods", pod("z", "n1", "x"), "y"), 400, "BadRequest");
});

t("field selectors: spec.nodeName, metadata.name, !=, unsupported fields rejected", () => {
  const pods = [pod("a", "n1"), pod("b", "n2"), { metadata: { name: "c", namespace: "default" }, spec: {} }] as KObject[];
  const names = (sel: string): string[] => pods.filter(parseFieldSelector("pods", sel)).map((p) => p.metadata.name!);
  assert.equal(names("spec.nodeName=n1"), ["a"]);
  assert.equal(names("spec.nodeName==n2"), ["b"]);
  assert.equal(names("spec.nodeName!=n1"), ["b", "c"]);
  assert.equal(names("spec.nodeName="), ["c"], "unscheduled pods have an empty nodeName");
  assert.equal(names("metadata.name=b,spec.nodeName=n2"), ["b"]);
  assert.equal(names(""), ["a", "b", "c"]);
  throwsCode(() => parseFieldSelector("pods", "spec.foo=1"), 400);
  throwsCode(() => parseFieldSelector("nodes", "spec.nodeName=n1"), 400);
});

t("label selectors: =, !=, exists, !exists, in, notin", () => {
  const objs = [pod("a", "n", "d", { seg: "100" }), pod("b", "n", "d", { seg: "200", x: "" }), pod("c", "n", "d")] as KObject[];
  const names = (sel: string): string[] => objs.filter(parseLabelSelector(sel)).map((p) => p.metadata.name!);
  assert.equal(names("seg=100"), ["a"]);
  assert.equal(names("seg!=100"), ["b", "c"]);
  assert.equal(names("seg"), ["a", "b"]);
  assert.equal(names("!seg"), ["c"]);
  assert.equal(names("seg in (100, 200),x"), ["b"]);
  assert.equal(names("seg notin (100)"), ["b", "c"]);
  throwsCode(() => parseLabelSelector("a b c"), 400);
});

t("patches: merge patch deletes with null and replaces arrays; JSON patch ops", () => {
  const doc = { metadata: { labels: { a: "1", b: "2" } }, spec: { list: [1, 2] } };
  assert.equal(mergePatch(doc, { metadata: { labels: { a: null, c: "3" } }, spec: { list: [9] } }),
    { metadata: { labels: { b: "2", c: "3" } }, spec: { list: [9] } });
  assert.equal(jsonPatch(doc, [
    { op: "add", path: "/metadata/labels/ovsplane.dev~1segment", value: "100" },
    { op: "remove", path: "/metadata/labels/a" },
    { op: "add", path: "/spec/list/-", value: 3 },
    { op: "replace", path: "/spec/list/0", value: 0 },
    { op: "test", path: "/metadata/labels/b", value: "2" },
  ]), { metadata: { labels: { b: "2", "ovsplane.dev/segment": "100" } }, spec: { list: [0, 2, 3] } });
  assert.equal(doc.metadata.labels, { a: "1", b: "2" }, "the input is not changed");
  throwsCode(() => jsonPatch(doc, [{ op: "test", path: "/metadata/labels/b", value: "x" }]), 422);
});

t.run();
