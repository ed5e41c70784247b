// Bursts: ADDs on a node whose bridge does not exist yet (after a reboot), then ADDs and DELs mixed on the warm node.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createNode, createPod, runPlugin, teardownAll, type SimNode } from "../harness/testbed.ts";
import { leaseFiles, scoped } from "../harness/fixtures.ts";
import { CNI_PATH, netConf, OVSPLANE, POD_FLOWS, podFlowLines, rmTemp, tempDir } from "./common.ts";

const t = suite("burst on a fresh node");
const BURST = 100;
/** Concurrent calls on the warm node: half DELs of running pods, half ADDs of new ones. */
const MIXED = 200;
let N: SimNode;
let dir: string;

t.before(async () => {
  dir = tempDir();
  N = await createNode({ name: "burst", underlayIP: "198.18.3.1" });
});

t.after(async () => {
  await teardownAll();
  rmTemp(dir);
});

t(`${BURST} concurrent ADDs on a node without a bridge all succeed with distinct addresses; their DELs leave nothing`, scoped(async (s) => {
  const conf = netConf(N, { podCIDR: "10.244.16.0/22", dataDir: dir, extra: { mtu: 1450 } });
  assert.is(await N.vsctl("--if-exists", "br-exists", "br-int").catch(() => "absent"), "absent", "no bridge before the burst");
  const pods = await Promise.all(Array.from({ length: BURST }, (_, i) => createPod(`bu${i}`)));
  const call = (command: "ADD" | "DEL", i: number) =>
    runPlugin({ bin: OVSPLANE, node: N, command, containerID: `ctr-bu${i}`, netns: pods[i]!, args: "IgnoreUnknown=1", path: CNI_PATH, config: conf, timeoutMs: 180_000 });
  const deleted = s.defer(() => Promise.all(pods.map((_, i) => call("DEL", i))));
  const adds = await Promise.all(pods.map((_, i) => call("ADD", i)));
  const failed = adds.map((r, i) => [i, r] as const).filter(([, r]) => r.code !== 0);
  assert.is(failed.length, 0, `failed ADDs: ${failed.slice(0, 5).map(([i, r]) => `#${i}: ${r.stdout.trim()}`).join("; ")}`);
  const ips = adds.map((r) => String(r.json.ips[0].address));
  assert.is(new Set(ips).size, BURST, "no duplicate address");
  assert.is(leaseFiles(dir, "podnet").length, BURST);
  assert.is((await podFlowLines(N)).length, BURST * POD_FLOWS);
  deleted();
  const dels = await Promise.all(pods.map((_, i) => call("DEL", i)));
  assert.is(dels.filter((r) => r.code !== 0).length, 0, dels.map((r) => r.stdout).join(""));
  assert.is(leaseFiles(dir, "podnet").length, 0, "no lease left");
  assert.is((await podFlowLines(N)).length, 0, "no pod flow left");
  assert.equal(await podPorts(), [], "no pod port left");
}));

/** Pod ports on br-int (not the tunnel or gateway port). */
async function podPorts(): Promise<string[]> {
  return (await N.vsctl("list-ports", "br-int")).split("\n").filter((p) => p.startsWith("ovsp") && p !== "ovsp-vxlan" && p !== "ovsplane-gw");
}

/** Host veths of pods left in the node's netns (names start with ovsp). */
async function podVeths(): Promise<string[]> {
  const out = await N.exec(["ip", "-o", "link", "show", "type", "veth"]);
  return out.stdout.split("\n").map((l) => l.split(": ")[1]?.split("@")[0] ?? "").filter((n) => n.startsWith("ovsp"));
}

t(`${MIXED} concurrent ADDs and DELs on a warm node all succeed and leave no residue`, scoped(async (s) => {
  const conf = netConf(N, { podCIDR: "10.244.16.0/22", dataDir: dir, extra: { mtu: 1450 } });
  const half = MIXED / 2;
  const pods = await Promise.all(Array.from({ length: MIXED }, (_, i) => createPod(`bm${i}`)));
  const call = (command: "ADD" | "DEL", i: number) =>
    runPlugin({ bin: OVSPLANE, node: N, command, containerID: `ctr-bm${i}`, netns: pods[i]!, args: "IgnoreUnknown=1", path: CNI_PATH, config: conf, timeoutMs: 180_000 });
  s.defer(() => Promise.all(pods.map((_, i) => call("DEL", i))));
  // Warm: the first half runs.
  const warm = await Promise.all(pods.slice(0, half).map((_, i) => call("ADD", i)));
  assert.is(warm.filter((r) => r.code !== 0).length, 0, warm.map((r) => r.stdout).join(""));
  // At once: the first half goes, the second half comes.
  const mixed = await Promise.all(pods.map((_, i) => call(i < half ? "DEL" : "ADD", i)));
  const failed = mixed.map((r, i) => [i, r] as const).filter(([, r]) => r.code !== 0);
  assert.is(failed.length, 0, `failed calls: ${failed.slice(0, 5).map(([i, r]) => `#${i} ${i < half ? "DEL" : "ADD"}: ${r.stdout.trim()}`).join("; ")}`);
  const ips = mixed.slice(half).map((r) => String(r.json.ips[0].address));
  assert.is(new Set(ips).size, half, "no duplicate address among the new pods");
  assert.is(leaseFiles(dir, "podnet").length, half, "one lease per running pod");
  assert.is((await podFlowLines(N)).length, half * POD_FLOWS, "the running pods' flows only");
  assert.is((await podPorts()).length, half);
  assert.is((await podVeths()).length, half);
  // All gone: nothing of any pod is left.
  const dels = await Promise.all(pods.map((_, i) => call("DEL", i)));
  assert.is(dels.filter((r) => r.code !== 0).length, 0, dels.map((r) => r.stdout).join(""));
  assert.is(leaseFiles(dir, "podnet").length, 0, "no lease left");
  assert.is((await podFlowLines(N)).length, 0, "no pod flow left");
  const segments = await N.ofctl("--no-stats", "dump-flows", N.ofSocket("br-int"), "cookie=0x6f76020000000000/0xffffff0000000000");
  assert.is(segments.split("\n").filter((l) => l.includes("cookie=")).length, 0, "no segment flow left");
  assert.equal(await podPorts(), [], "no pod port left");
  assert.equal(await podVeths(), [], "no host veth left");
}));

t.run();
