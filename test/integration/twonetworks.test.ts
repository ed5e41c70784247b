// Two ovsplane networks on one bridge, in one segment: each network's CHECK holds through the other's ADDs and DELs.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createNode, connectNodes, runPlugin, teardownAll, type SimNode } from "../harness/testbed.ts";
import { addPod, CNI_PATH, delPod, netConf, OVSPLANE, rmTemp, tempDir, type AttachedPod } from "./common.ts";

const t = suite("two networks, one bridge");
let A: SimNode, B: SimNode;
const dirs: string[] = [];
const conf: Record<string, Record<string, unknown>> = {};
/** Pods by name, with the network they belong to. */
const pods = new Map<string, { net: string; node: SimNode; p: AttachedPod }>();

t.before(async () => {
  A = await createNode({ name: "na", underlayIP: "198.18.0.1" });
  B = await createNode({ name: "nb", underlayIP: "198.18.0.2" });
  await connectNodes(A, B);
  const d = () => (dirs.push(tempDir()), dirs[dirs.length - 1]!);
  // Both networks have node B as their peer: the tunnel acceptance of B is shared by them.
  conf.netA = netConf(A, { name: "neta", podCIDR: "10.244.1.0/24", peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }], dataDir: d() });
  conf.netB = netConf(A, { name: "netb", podCIDR: "10.245.1.0/24", peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.245.2.0/24" }], dataDir: d() });
  conf.netBonB = netConf(B, { name: "netb", podCIDR: "10.245.2.0/24", peers: [{ nodeIP: "198.18.0.1", podCIDR: "10.245.1.0/24" }], dataDir: d() });
});

t.after(async () => {
  await teardownAll();
  for (const d of dirs) rmTemp(d);
});

async function add(name: string, net: "netA" | "netB" | "netBonB"): Promise<void> {
  const node = net === "netBonB" ? B : A;
  pods.set(name, { net, node, p: await addPod(node, conf[net]!, name) });
}

async function del(name: string): Promise<void> {
  const x = pods.get(name)!;
  const r = await delPod(x.node, conf[x.net]!, x.p);
  assert.is(r.code, 0, `DEL ${name}: ${r.stdout}`);
  pods.delete(name);
}

/** Each test starts from a bridge with no pod of either network (it stands on its own). */
async function reset(): Promise<void> {
  for (const name of [...pods.keys()]) await del(name);
}

/** CHECK of every pod still attached, of both networks, passes. */
async function checkAll(after: string): Promise<void> {
  for (const [name, x] of pods) {
    const r = await runPlugin({
      bin: OVSPLANE, node: x.node, command: "CHECK", containerID: x.p.containerID, netns: x.p.pod, args: "IgnoreUnknown=1", path: CNI_PATH,
      config: { ...conf[x.net]!, prevResult: x.p.result.json },
    });
    assert.is(r.code, 0, `CHECK of ${name} (${x.net}) after ${after}: ${r.stdout}`);
  }
}

t("CHECK of every pod of both networks passes after each ADD and each DEL of the other", async () => {
  await reset();
  await add("a1", "netA");
  await checkAll("ADD a1");
  await add("b1", "netB");
  await checkAll("ADD b1 (the other network, same segment)");
  await add("b2", "netB");
  await add("b3", "netBonB");
  await checkAll("ADD b2, b3");
  await add("a2", "netA");
  await checkAll("ADD a2");
  await del("a1");
  await checkAll("DEL a1");
  await del("b1");
  await checkAll("DEL b1");
  await add("b1", "netB");
  await checkAll("ADD b1 again");
});

t("DEL of the last pod of one network leaves the other's traffic intact, on the node and across the tunnel", async () => {
  await reset();
  await add("a1", "netA");
  for (const [n, net] of [["b1", "netB"], ["b2", "netB"], ["b3", "netBonB"]] as const) await add(n, net);
  await del("a1"); // the last pod of netA
  await checkAll("DEL of netA's last pod");
  const [b1, b2, b3] = ["b1", "b2", "b3"].map((n) => pods.get(n)!.p);
  assert.ok(await b1!.pod.ping(b2!.ip), "b1 → b2 on node A");
  assert.ok(await b1!.pod.ping(b3!.ip), "b1 → b3 on node B (shared peer acceptance kept)");
  assert.ok(await b3!.pod.ping(b2!.ip), "b3 → b2 across the tunnel");
});

t.run();
