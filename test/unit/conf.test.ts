// The shipped configuration: example conflists and Kubernetes manifests parse and pass ovsplane's own validation.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { loadAll } from "js-yaml";
import { validateConflist } from "../../lib/ctl/installer.ts";
import { agentConflist, networkConfig } from "../../lib/agent/model.ts";
import { DEFAULT_DATA_DIR } from "../../lib/ipam/config.ts";
// Not in the package index: the generated models' (de)serializer, which keeps only the fields of each type.
import { ObjectSerializer } from "@kubernetes/client-node/dist/gen/models/ObjectSerializer.js";

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

test("the Kubernetes conflist is an agent template: no static peers, global segment 1, and valid once the agent fills it", () => {
  const k = json("kubernetes.conflist");
  assert.ok(Array.isArray(k["ovsplane.dev/filled-by-agent"]));
  const p = (k.plugins as any[])[0];
  assert.is(p.peers, undefined);
  assert.equal(p.globalSegments, [1]);
  assert.is(p.segment, 1);
  assert.is(p.ipam.type, "ovsplane-ipam");
  assert.ok(p.logFile);
  const cfg = networkConfig(k);
  assert.equal(cfg.globalSegments, [1]);
  const filled = agentConflist(k, { name: "n1", podCIDRs: ["10.244.3.0/24"], address: "192.0.2.10" }, "/var/run/ovsplane")!;
  const fp = (filled.plugins as any[])[0];
  assert.is(fp.tunnel.localIP, "192.0.2.10");
  assert.is(fp.ipam.ranges[0][0].subnet, "10.244.3.0/24");
  assert.equal(fp.agent, { stateDir: "/var/run/ovsplane" });
  assert.is(agentConflist(k, { name: "n1", podCIDRs: [] }, "/var/run/ovsplane"), undefined, "nothing before the Node has a pod range");
});

const docs = loadAll(readFileSync(join(CONF, "kubernetes/ovsplane.yaml"), "utf8")) as any[];
const byKind = (k: string) => docs.filter((d) => d?.kind === k);

const ds = () => byKind("DaemonSet")[0];
const agentContainer = () => ds().spec.template.spec.containers.find((c: any) => c.name === "ovsplane-agent");
/** The value of a `--flag=value` in a command. */
const flag = (cmd: string[], name: string) => cmd.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

test("the manifest holds ServiceAccount, RBAC, ConfigMap and DaemonSet with their required fields", () => {
  for (const d of docs) {
    assert.ok(d.apiVersion && d.kind && d.metadata?.name, JSON.stringify(d).slice(0, 80));
  }
  for (const k of ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"]) assert.is(byKind(k).length, 1, k);
  const d = ds();
  assert.equal(d.spec.selector.matchLabels, d.spec.template.metadata.labels);
  assert.is(d.spec.template.spec.hostNetwork, true);
  const used = new Set(
    [...d.spec.template.spec.initContainers, ...d.spec.template.spec.containers].flatMap((c: any) => (c.volumeMounts ?? []).map((m: any) => m.name)),
  );
  for (const v of d.spec.template.spec.volumes) assert.ok(used.has(v.name), `volume ${v.name} mounted`);
  const paths = d.spec.template.spec.volumes.map((v: any) => v.hostPath?.path).filter(Boolean);
  assert.ok(paths.includes("/opt/cni/bin") && paths.includes("/etc/cni/net.d"));
});

test("every field of the manifest is a field of its Kubernetes type (no typo silently ignored)", () => {
  for (const d of docs) {
    const type = `V1${d.kind}`;
    const plain = JSON.parse(JSON.stringify(d));
    const back = JSON.parse(JSON.stringify(ObjectSerializer.serialize(ObjectSerializer.deserialize(plain, type, ""), type, "")));
    const lost: string[] = [];
    const walk = (o: any, b: any, path: string) => {
      if (o && typeof o === "object") for (const k of Object.keys(o)) (b && typeof b === "object" && k in b) ? walk(o[k], b[k], `${path}.${k}`) : lost.push(`${path}.${k}`);
    };
    walk(plain, back, d.kind);
    assert.equal(lost, [], `unknown fields in ${d.kind}`);
  }
});

test("the init container only installs the executables: no conflist, no host file", () => {
  const init = ds().spec.template.spec.initContainers[0];
  assert.equal(init.command.slice(0, 2), ["/ovsplanectl", "install"]);
  for (const f of ["conf-file", "pod-cidr", "pod-cidr-file", "local-ip", "peer"]) assert.is(flag(init.command, f), undefined, `--${f}`);
  const mountOf = (n: string) => init.volumeMounts.find((m: any) => m.name === n)?.mountPath;
  assert.is(flag(init.command, "bin-dir"), mountOf("cni-bin"));
  const hostPaths = ds().spec.template.spec.volumes.map((v: any) => v.hostPath?.path);
  assert.not.ok(hostPaths.includes("/etc/ovsplane"), "no /etc/ovsplane host file");
});

test("the agent container: NODE_NAME from spec.nodeName, host network, probes on --listen, host paths mounted", () => {
  const c = agentContainer();
  assert.ok(c, "a container named ovsplane-agent");
  assert.is(c.command[0], "/ovsplane-agent");
  const env = c.env.find((e: any) => e.name === "NODE_NAME");
  assert.is(env?.valueFrom?.fieldRef?.fieldPath, "spec.nodeName");
  assert.is(ds().spec.template.spec.hostNetwork, true);
  // Probes reach exactly what --listen binds (kubelet runs in the host netns, which the pod shares).
  const listen = flag(c.command, "listen")!;
  const m = /^(.*):(\d+)$/.exec(listen)!;
  assert.ok(m, `--listen ${listen}`);
  const byPath = { livenessProbe: "/healthz", readinessProbe: "/readyz" } as const;
  for (const [probe, path] of Object.entries(byPath)) {
    const g = c[probe]?.httpGet;
    assert.ok(g, probe);
    assert.is(g.port, Number(m[2]), `${probe} port`);
    assert.is(g.host, m[1], `${probe} host`);
    assert.is(g.path, path);
  }
  // Host paths: where each path the agent uses is mounted from.
  const vols = new Map(ds().spec.template.spec.volumes.map((v: any) => [v.name, v]));
  const hostPathAt = (mountPath: string) => {
    const mt = c.volumeMounts.find((x: any) => x.mountPath === mountPath);
    return mt && (vols.get(mt.name) as any)?.hostPath?.path;
  };
  assert.is(hostPathAt(flag(c.command, "cni-conf-dir")!), "/etc/cni/net.d");
  const stateDir = flag(c.command, "state-dir")!;
  assert.is(hostPathAt(stateDir), stateDir, "the state dir at its host path (the plugin reads it there)");
  const tmpl = JSON.parse(byKind("ConfigMap")[0].data["10-ovsplane.conflist"]);
  const cfg = networkConfig(tmpl);
  const sockDir = cfg.ovsdbSocket.replace(/^unix:/, "").replace(/\/[^/]+$/, "");
  assert.is(hostPathAt(sockDir), sockDir, "the OVS sockets at their host path");
  const logDir = cfg.logFile!.replace(/\/[^/]+$/, "");
  assert.is(hostPathAt(logDir), logDir, "the CNI log at its host path");
  assert.is(hostPathAt(DEFAULT_DATA_DIR), DEFAULT_DATA_DIR, "the IPAM leases at their host path (the agent's GC runs DEL)");
  // The template comes from the ConfigMap.
  const confFile = flag(c.command, "conf-file")!;
  const cm = c.volumeMounts.find((x: any) => confFile.startsWith(`${x.mountPath}/`));
  assert.is((vols.get(cm?.name) as any)?.configMap?.name, byKind("ConfigMap")[0].metadata.name);
  assert.ok(c.securityContext?.capabilities?.add?.includes("NET_ADMIN") || c.securityContext?.privileged, "may change routes and iptables");
});

test("the RBAC grants exactly get/list/watch on nodes, namespaces, pods, services, networkpolicies and endpointslices", () => {
  const rules = byKind("ClusterRole")[0].rules as { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[]; nonResourceURLs?: string[] }[];
  const grants = new Set(rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}/${v}`)))));
  const want = new Set(["/nodes", "/namespaces", "/pods", "/services", "networking.k8s.io/networkpolicies", "discovery.k8s.io/endpointslices"].flatMap((res) => ["get", "list", "watch"].map((v) => `${res}/${v}`)));
  assert.equal([...grants].sort(), [...want].sort());
  for (const r of rules) assert.not.ok(r.resourceNames || r.nonResourceURLs, "no other kind of rule");
  const binding = byKind("ClusterRoleBinding")[0];
  assert.is(binding.roleRef.name, byKind("ClusterRole")[0].metadata.name);
  assert.is(binding.subjects[0].name, byKind("ServiceAccount")[0].metadata.name);
  assert.is(ds().spec.template.spec.serviceAccountName, byKind("ServiceAccount")[0].metadata.name);
});

test("the ConfigMap's conflist is the Kubernetes template", () => {
  const text = byKind("ConfigMap")[0].data["10-ovsplane.conflist"];
  assert.equal(JSON.parse(text), json("kubernetes.conflist"));
});

test.run();
