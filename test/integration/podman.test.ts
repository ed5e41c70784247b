// podman (CNI backend, runc) as a real runtime client: containers on an ovsplane network, run inside a simulated node.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createNode, teardownAll, type SimNode } from "../harness/testbed.ts";
import { PodmanEnv } from "../harness/podman.ts";
import { CNI_PATH, netConf, podFlowLines, rmTemp, tempDir } from "./common.ts";

const NET = "ovspnet";
const POD_CIDR = "10.244.30.0/24";
const t = suite("podman with the CNI backend");
let node: SimNode;
let pm: PodmanEnv | undefined;
let dataDir: string;
let image: string;
const ips: Record<string, string> = {};

t.before(async () => {
  dataDir = tempDir();
  node = await createNode({ name: "pm", underlayIP: "198.18.30.1", podCIDR: POD_CIDR });
  const { cniVersion: _v, name: _n, ...plugin } = netConf(node, { podCIDR: POD_CIDR, dataDir, extra: { mtu: 1450 } });
  pm = await PodmanEnv.create(node, {
    pluginDirs: CNI_PATH,
    conflists: { [NET]: { cniVersion: "1.0.0", name: NET, plugins: [plugin] } },
  });
  image = await pm.importBusybox();
});

t.after(async () => {
  await pm?.destroy(); // before the node goes: podman's CNI DEL needs the node's OVS
  await teardownAll();
  rmTemp(dataDir);
});

t("podman sees the ovsplane network", async () => {
  const r = await pm!.podman(["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
  assert.ok(r.stdout.split("\n").includes(`${NET} ovsplane`), r.stdout);
});

t("two containers get addresses in the pod CIDR and ping each other", async () => {
  for (const c of ["c1", "c2"]) {
    await pm!.runDetached(c, NET, image, ["sleep", "300"]);
    const addrs = await pm!.addresses(c);
    assert.is(addrs.length, 1, `${c}: ${addrs.join(", ")}`);
    assert.ok(addrs[0]!.startsWith("10.244.30.") && addrs[0]!.endsWith("/24"), `${c}: ${addrs[0]}`);
    ips[c] = addrs[0]!.split("/")[0]!;
  }
  assert.is.not(ips.c1, ips.c2);
  const mtu = await pm!.podman(["exec", "c1", "cat", "/sys/class/net/eth0/mtu"]);
  assert.is(mtu.stdout.trim(), "1450");
  assert.ok(await pm!.ping("c1", ips.c2!), `c1 -> c2 (${ips.c2})`);
  assert.ok(await pm!.ping("c2", ips.c1!), `c2 -> c1 (${ips.c1})`);
});

t("each container is an ovsplane port on br-int with pod flows and a lease", async () => {
  const ports = await podPorts(node);
  assert.is(ports.length, 2, ports.join(" "));
  const ids = await node.vsctl("get", "port", ports[0]!, "external_ids");
  assert.ok(ids.includes(`ovsplane-network=${NET}`), ids);
  assert.ok((await podFlowLines(node)).length > 0, "pod flows");
  assert.equal(leases().sort(), [ips.c1!, ips.c2!].sort());
  assert.is((await pm!.liveNetns()).length, 2, "a netns per container in /run/netns");
});

t("podman rm -f leaves no port, flow, lease, veth or container netns", async () => {
  await pm!.rmForce("c1", "c2");
  await pm!.settle(); // the cleanup podman each conmon starts on exit (it may retry the CNI DEL)
  assert.equal(pm!.processes(), [], "conmon/podman/runc processes left");
  const ports = (await node.vsctl("list-ports", "br-int")).split("\n").filter(Boolean);
  assert.equal(ports.filter((p) => /^ovsp[0-9a-f]{11}$/.test(p)), [], `ports left: ${ports.join(" ")}`);
  assert.equal(await podFlowLines(node), []);
  assert.equal(leases(), []);
  const links = await node.exec(["ip", "-o", "link", "show"]);
  assert.equal(links.stdout.split("\n").map((l) => l.split(": ")[1]?.split("@")[0] ?? "").filter((n) => /^ovsp[0-9a-f]/.test(n)), []);
  assert.equal(await pm!.liveNetns(), []);
  assert.is((await pm!.podman(["ps", "-aq"])).stdout.trim(), "");
});

/** Host ends of pod veths on br-int (`ovsp` + 11 hex digits). */
async function podPorts(n: SimNode): Promise<string[]> {
  return (await n.vsctl("list-ports", "br-int")).split("\n").filter((p) => /^ovsp[0-9a-f]{11}$/.test(p));
}

/** Lease files (addresses) in the IPAM data dir of this network. */
function leases(): string[] {
  try {
    return readdirSync(join(dataDir, NET)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
  } catch {
    return [];
  }
}

t.run();
