// The shipped configuration: example conflists and Kubernetes manifests parse and pass ovsplane's own validation.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { loadAll } from "js-yaml";
import { validateConflist } from "../../lib/ctl/installer.ts";
import { applyNodeFacts } from "../../lib/ctl/main.ts";

const CONF = join(__dirname, "../../conf");
const json = (f: string) => JSON.parse(readFileSync(join(CONF, f), "utf8")) as Record<string, unknown>;

test("example conflists are valid ovsplane configurations", () => {
  for (const f of ["single-node.conflist", "two-nodes-a.conflist", "two-nodes-b.conflist"]) validateConflist(json(f));
});

test("the two-node examples are each other's peers", () => {
  const a = (json("two-nodes-a.conflist").plugins as any[])[0];
  const b = (json("two-nodes-b.conflist").plugins as any[])[0];
  assert.is(a.peers[0].nodeIP, b.tunnel.localIP);
  assert.is(b.peers[0].podCIDR, a.ipam.ranges[0][0].subnet);
});

test("the Kubernetes conflist says what the installer fills, and is valid once filled", () => {
  const k = json("kubernetes.conflist");
  assert.ok(Array.isArray(k["ovsplane.dev/filled-by-installer"]));
  assert.throws(() => validateConflist(structuredClone(k)));
  validateConflist(applyNodeFacts(structuredClone(k), { podCidr: "10.244.3.0/24", localIp: "192.0.2.10" }));
});

const docs = loadAll(readFileSync(join(CONF, "kubernetes/ovsplane.yaml"), "utf8")) as any[];
const byKind = (k: string) => docs.filter((d) => d?.kind === k);

test("the manifest holds ServiceAccount, RBAC, ConfigMap and DaemonSet with their required fields", () => {
  for (const d of docs) {
    assert.ok(d.apiVersion && d.kind && d.metadata?.name, JSON.stringify(d).slice(0, 80));
  }
  for (const k of ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"]) assert.is(byKind(k).length, 1, k);
  const ds = byKind("DaemonSet")[0];
  assert.equal(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels);
  assert.ok(ds.spec.template.spec.hostNetwork);
  const init = ds.spec.template.spec.initContainers[0];
  assert.is(init.command[0], "/ovsplanectl");
  assert.is(init.command[1], "install");
  const mounts = new Set(init.volumeMounts.map((m: any) => m.name));
  for (const v of ds.spec.template.spec.volumes) assert.ok(mounts.has(v.name), `volume ${v.name} mounted`);
  const paths = ds.spec.template.spec.volumes.map((v: any) => v.hostPath?.path).filter(Boolean);
  assert.ok(paths.includes("/opt/cni/bin") && paths.includes("/etc/cni/net.d"));
});

test("the RBAC grants what the agent needs: list/watch Nodes and Namespaces, read Pods", () => {
  const rules = byKind("ClusterRole")[0].rules as { resources: string[]; verbs: string[] }[];
  const can = (res: string, verb: string) => rules.some((r) => r.resources.includes(res) && r.verbs.includes(verb));
  for (const r of ["nodes", "namespaces"]) for (const v of ["list", "watch"]) assert.ok(can(r, v), `${v} ${r}`);
  assert.ok(can("pods", "get"));
  const binding = byKind("ClusterRoleBinding")[0];
  assert.is(binding.subjects[0].name, byKind("ServiceAccount")[0].metadata.name);
  assert.is(byKind("DaemonSet")[0].spec.template.spec.serviceAccountName, byKind("ServiceAccount")[0].metadata.name);
});

test("the ConfigMap's conflist is the Kubernetes example and passes validation once filled", () => {
  const text = byKind("ConfigMap")[0].data["10-ovsplane.conflist"];
  assert.equal(JSON.parse(text), json("kubernetes.conflist"));
  validateConflist(applyNodeFacts(JSON.parse(text), { podCidr: "10.244.9.0/24", localIP: undefined, localIp: "192.0.2.9" } as any));
});

test.run();
