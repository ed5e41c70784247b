// A burst of ADDs on a node whose bridge does not exist yet (after a reboot): every one succeeds, none waits in vain.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createNode, createPod, runPlugin, teardownAll, type SimNode } from "../harness/testbed.ts";
import { leaseFiles, scoped } from "../harness/fixtures.ts";
import { CNI_PATH, netConf, OVSPLANE, POD_FLOWS, podFlowLines, rmTemp, tempDir } from "./common.ts";

const t = suite("burst on a fresh node");
const BURST = 100;
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
  const ports = (await N.vsctl("list-ports", "br-int")).split("\n").filter((p) => p.startsWith("ovsp") && p !== "ovsp-vxlan" && p !== "ovsplane-gw");
  assert.equal(ports, [], "no pod port left");
}));

t.run();
