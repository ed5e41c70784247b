// The DaemonSet image: built offline FROM scratch with podman; the manifest's init container run from it, the agent's entry and host tools checked.
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { run } from "../../lib/host/exec.ts";
import { createNode, createPod, runPlugin, teardownAll, REPO_ROOT, type SimNode } from "../harness/testbed.ts";
import { rmTemp, tempDir } from "./common.ts";
import { load, loadAll } from "js-yaml";

const t = suite("image");
const IMAGE = "localhost/ovsplane:test";
let S: string;
let N: SimNode;

const podman = (...args: string[]) =>
  run(["podman", "--root", join(S, "root"), "--runroot", join(S, "runroot"), "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs", ...args], { timeoutMs: 300_000, allowFail: true });

t.before(async () => {
  S = tempDir("ovsp-image-");
  N = await createNode({ name: "img", underlayIP: "198.18.40.1" });
});

t.after(async () => {
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

t.run();
