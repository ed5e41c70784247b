// The DaemonSet image: built offline FROM scratch with podman; the manifest's init container and agent container run from it as the DaemonSet runs them (the agent against the fake API server, in a simulated node's netns).
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { run } from "../../lib/host/exec.ts";
import { createNode, createPod, runPlugin, sleep, teardownAll, testbed, REPO_ROOT, type SimNode } from "../harness/testbed.ts";
import { createOutsideHost } from "../harness/outside.ts";
import { netnsPath } from "../harness/netns.ts";
import { spawnApiServer, type ApiServerProcess } from "../harness/apiserver/process.ts";
import { rmTemp, tempDir } from "./common.ts";
import { load, loadAll } from "js-yaml";

const t = suite("image");
const IMAGE = "localhost/ovsplane:test";
let S: string;
let N: SimNode;
let api: ApiServerProcess | undefined;

const podman = (...args: string[]) =>
  run(["podman", "--root", join(S, "root"), "--runroot", join(S, "runroot"), "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs", ...args], { timeoutMs: 300_000, allowFail: true });

t.before(async () => {
  S = tempDir("ovsp-image-");
  N = await createNode({ name: "img", underlayIP: "198.18.40.1" });
});

t.after(async () => {
  await podman("rm", "-af", "-t", "0").catch(() => undefined);
  await api?.close();
  await podman("rmi", "-af").catch(() => undefined);
  await teardownAll();
  await run(["rm", "-rf", S], { allowFail: true });
});

t("the image builds offline from scratch and holds only the executable, its links, the agent's host tools and libraries", async () => {
  const rootfs = join(S, "rootfs");
  await run(["bash", join(REPO_ROOT, "scripts/image-rootfs.sh"), rootfs]);
  const b = await podman("build", "-q", "-f", join(REPO_ROOT, "conf/Containerfile"), "-t", IMAGE, rootfs);
  assert.is(b.code, 0, b.stderr);
  const size = await podman("image", "inspect", IMAGE, "--format", "{{.Size}}");
  assert.ok(Number(size.stdout.trim()) < 200 * 1024 * 1024, `image size ${size.stdout}`);
});

t("install with a conflist file (static mode, by hand) writes the executables and the filled conflist into the host dirs, then they work", async () => {
  const host = join(S, "host");
  for (const d of ["opt/cni/bin", "etc/cni/net.d", "etc/ovsplane"]) mkdirSync(join(host, d), { recursive: true });
  writeFileSync(join(host, "etc/ovsplane/pod-cidr"), "10.244.40.0/24\n");
  const r = await podman("run", "--rm", "--network", "none", "--ulimit", "nproc=1024:1024", "--ulimit", "nofile=1024:1024",
    "-v", `${join(host, "opt/cni/bin")}:/host/opt/cni/bin`, "-v", `${join(host, "etc/cni/net.d")}:/host/etc/cni/net.d`,
    "-v", `${join(host, "etc/ovsplane")}:/host/etc/ovsplane:ro`,
    "-v", `${join(REPO_ROOT, "conf/kubernetes.conflist")}:/etc/ovsplane-config/10-ovsplane.conflist:ro`,
    IMAGE, "install", "--bin-dir=/host/opt/cni/bin", "--conf-dir=/host/etc/cni/net.d", "--conf-file=/etc/ovsplane-config/10-ovsplane.conflist",
    "--pod-cidr-file=/host/etc/ovsplane/pod-cidr", "--local-ip=198.18.40.1");
  assert.is(r.code, 0, r.stderr + r.stdout);
  const bin = join(host, "opt/cni/bin");
  assert.ok(existsSync(join(bin, "ovsplane")));
  assert.is(readlinkSync(join(bin, "ovsplane-ipam")), "ovsplane");
  const conf = JSON.parse(readFileSync(join(host, "etc/cni/net.d/10-ovsplane.conflist"), "utf8"));
  assert.is(conf.plugins[0].ipam.ranges[0][0].subnet, "10.244.40.0/24");
  assert.is(conf.plugins[0].tunnel.localIP, "198.18.40.1");
  // Use what was installed, pointed at the simulated node's OVS (userspace datapath here).
  const dir = tempDir();
  try {
    const plugin = { ...conf.plugins[0], cniVersion: conf.cniVersion, name: conf.name, datapathType: "netdev", ovsdbSocket: N.ovsdbSocket, mtu: 1450 };
    plugin.ipam = { ...plugin.ipam, dataDir: dir };
    const pod = await createPod("img");
    const add = await runPlugin({ bin: join(bin, "ovsplane"), node: N, command: "ADD", containerID: "ctr-img", netns: pod, path: [bin], config: plugin });
    assert.is(add.code, 0, add.stdout + add.stderr);
    assert.ok(await pod.ping("10.244.40.1"));
    const del = await runPlugin({ bin: join(bin, "ovsplane"), node: N, command: "DEL", containerID: "ctr-img", netns: pod, path: [bin], config: plugin });
    assert.is(del.code, 0, del.stdout);
  } finally {
    rmTemp(dir);
  }
});

/** A container of the manifest's DaemonSet, by name (init containers included). */
function manifestContainer(name: string): { command: string[] } {
  const docs = loadAll(readFileSync(join(REPO_ROOT, "conf/kubernetes/ovsplane.yaml"), "utf8")) as any[];
  const spec = docs.find((d) => d?.kind === "DaemonSet").spec.template.spec;
  return [...spec.initContainers, ...spec.containers].find((c: any) => c.name === name);
}

t("the manifest's init container installs the executables and all links, and writes no conflist", async () => {
  const host = join(S, "host-agent");
  for (const d of ["opt/cni/bin", "etc/cni/net.d"]) mkdirSync(join(host, d), { recursive: true });
  const [entry, ...args] = manifestContainer("install-cni").command;
  const r = await podman("run", "--rm", "--network", "none", "--ulimit", "nproc=1024:1024", "--ulimit", "nofile=1024:1024",
    "-v", `${join(host, "opt/cni/bin")}:/host/opt/cni/bin`, "-v", `${join(host, "etc/cni/net.d")}:/host/etc/cni/net.d`,
    "--entrypoint", entry!, IMAGE, ...args);
  assert.is(r.code, 0, r.stderr + r.stdout);
  const bin = join(host, "opt/cni/bin");
  assert.ok(existsSync(join(bin, "ovsplane")));
  for (const l of ["ovsplane-ipam", "ovsplanectl", "ovsplane-agent"]) assert.is(readlinkSync(join(bin, l)), "ovsplane", l);
  assert.not.ok(existsSync(join(host, "etc/cni/net.d/10-ovsplane.conflist")), "the agent writes the conflist, not the installer");
});

t("the agent container's entry and the host tools it runs (ip, iptables-save, iptables-restore) work in the image", async () => {
  const opts = ["run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", "--ulimit", "nproc=1024:1024", "--ulimit", "nofile=1024:1024"];
  const entry = manifestContainer("ovsplane-agent").command[0]!;
  const help = await podman(...opts, "--entrypoint", entry, IMAGE, "--help");
  assert.is(help.code, 0, help.stderr + help.stdout);
  assert.match(help.stdout, "--conf-file");
  const ip = await podman(...opts, "--entrypoint", "ip", IMAGE, "-j", "route", "show", "proto", "111");
  assert.is(ip.code, 0, ip.stderr);
  assert.equal(load(ip.stdout || "[]"), []);
  // A restore with a comment match, a MASQUERADE target and the raw table: the extensions load.
  const rules = "*nat\n:OVSPLANE-MASQ-T - [0:0]\n-A POSTROUTING -s 10.244.0.0/24 -m comment --comment ovsplane -j OVSPLANE-MASQ-T\n-A OVSPLANE-MASQ-T -j MASQUERADE\nCOMMIT\n*raw\n:OVSPLANE-PODS - [0:0]\n-A PREROUTING -j OVSPLANE-PODS\nCOMMIT\n";
  const res = await run(["bash", "-c", `printf '${rules}' | podman --root ${join(S, "root")} --runroot ${join(S, "runroot")} --storage-driver vfs --runtime runc --cgroup-manager cgroupfs ${opts.join(" ")} -i --entrypoint iptables-restore ${IMAGE} -w --noflush`], { allowFail: true, timeoutMs: 120_000 });
  assert.is(res.code, 0, res.stderr);
  const save = await podman(...opts, "--entrypoint", "iptables-save", IMAGE);
  assert.is(save.code, 0, save.stderr);
});

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
const readJson = (p: string): any => (existsSync(p) ? JSON.parse(readFileSync(p, "utf8")) : undefined);

t("the manifest's agent container, run from the image as the DaemonSet runs it (in-cluster config, NODE_NAME): conflist, segments.json, host state, /readyz", async () => {
  // The API server on the underlay; the node joined to it.
  await testbed.attachUnderlay(N);
  const host = await createOutsideHost({ name: "apiimg", address: "198.18.40.200/24" });
  const apiDir = join(S, "api");
  mkdirSync(apiDir);
  api = await spawnApiServer({ listen: "198.18.40.200:6443", dir: apiDir, netns: host.netns });
  for (const ns of ["default", "kube-system"]) await api.upsert("namespaces", { metadata: { name: ns } });
  await api.upsert("namespaces", { metadata: { name: "shop", labels: { "ovsplane.dev/segment": "100" } } });
  await api.upsert("nodes", {
    metadata: { name: "img" },
    spec: { podCIDR: "10.244.41.0/24", podCIDRs: ["10.244.41.0/24"] },
    status: { addresses: [{ type: "InternalIP", address: N.underlayIP }] },
  });
  // The ConfigMap's template, pointed at the simulated node's OVS (userspace datapath, private run dir).
  const docs = loadAll(readFileSync(join(REPO_ROOT, "conf/kubernetes/ovsplane.yaml"), "utf8")) as any[];
  const tmpl = JSON.parse(docs.find((d) => d?.kind === "ConfigMap").data["10-ovsplane.conflist"]);
  Object.assign(tmpl.plugins[0], { datapathType: "netdev", ovsdbSocket: N.ovsdbSocket, logFile: join(S, "cni.log") });
  const tmplFile = join(S, "template.conflist");
  writeFileSync(tmplFile, JSON.stringify(tmpl));
  const confDir = join(S, "agent-net.d");
  const stateDir = join(S, "agent-state");
  for (const d of [confDir, stateDir]) mkdirSync(d, { recursive: true });
  const runDir = N.ovsdbSocket.replace(/^unix:/, "").replace(/\/[^/]+$/, "");
  const c = manifestContainer("ovsplane-agent") as { command: string[] };
  // The serviceaccount mount and the KUBERNETES_SERVICE_* env kubelet gives every pod; the manifest's own command.
  const r = await podman("run", "-d", "--name", "ovsplane-agent-test", "--network", `ns:${netnsPath(N.netns)}`,
    "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--ulimit", "nproc=1024:1024", "--ulimit", "nofile=1024:1024",
    "-e", "NODE_NAME=img", "-e", "KUBERNETES_SERVICE_HOST=198.18.40.200", "-e", "KUBERNETES_SERVICE_PORT=6443",
    "-v", `${apiDir}:/var/run/secrets/kubernetes.io/serviceaccount:ro`,
    "-v", `${tmplFile}:/etc/ovsplane-config/10-ovsplane.conflist:ro`,
    "-v", `${confDir}:/host/etc/cni/net.d`, "-v", `${stateDir}:/var/run/ovsplane`, "-v", `${runDir}:${runDir}`,
    "--entrypoint", c.command[0]!, IMAGE, ...c.command.slice(1));
  assert.is(r.code, 0, r.stderr);
  const logs = async () => (await podman("logs", "ovsplane-agent-test")).stderr;
  try {
    const conf = await waitFor("the conflist", () => readJson(join(confDir, "10-ovsplane.conflist")));
    assert.is(conf.plugins[0].tunnel.localIP, N.underlayIP);
    assert.is(conf.plugins[0].ipam.ranges[0][0].subnet, "10.244.41.0/24");
    assert.equal(conf.plugins[0].agent, { stateDir: "/var/run/ovsplane" });
    assert.is(conf.plugins[0].peers, undefined);
    const segs = await waitFor("segments.json", () => readJson(join(stateDir, "segments.json")));
    assert.equal(segs.namespaces, { default: 1, "kube-system": 1, shop: 100 });
    // Host state written by the image's ip and iptables-restore, in the node's netns.
    await waitFor("the gateway address", async () => (await N.exec(["ip", "-4", "addr", "show", "dev", "ovsplane-gw"], { allowFail: true })).stdout.includes("10.244.41.1/24"));
    await waitFor("the masquerade chain", async () => /OVSPLANE-MASQ/.test((await N.exec(["iptables-save", "-t", "nat"])).stdout));
    // What the readiness probe asks (host 127.0.0.1 in the node's network).
    const probe = docs.find((d) => d?.kind === "DaemonSet").spec.template.spec.containers.find((x: any) => x.name === "ovsplane-agent").readinessProbe.httpGet;
    await waitFor("/readyz 200", async () => (await N.exec(["curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", `http://${probe.host}:${probe.port}${probe.path}`], { allowFail: true })).stdout === "200");
  } catch (e) {
    console.error(await logs());
    throw e;
  } finally {
    await podman("rm", "-f", "-t", "2", "ovsplane-agent-test");
  }
});

t.run();
