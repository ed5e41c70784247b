// ovsplane driven by libcni (the library inside containerd and CRI-O): ADD, CHECK, DEL with the result cache.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createNode, createPod, runDriver, teardownAll, type SimNode } from "../harness/testbed.ts";
import { BIN_DIR, netConf, podFlowLines, REF_DIR, rmTemp, tempDir } from "./common.ts";

const t = suite("libcni");
let N: SimNode;
let dir: string;

t.before(async () => {
  dir = tempDir();
  N = await createNode({ name: "l", underlayIP: "198.18.3.1" });
});

t.after(async () => {
  await teardownAll();
  rmTemp(dir);
});

t("ADD, CHECK and DEL of an ovsplane conflist through libcni, with containerd's CNI_ARGS", async () => {
  const plugin = netConf(N, { podCIDR: "10.244.7.0/24", dataDir: dir, extra: { mtu: 1450 } });
  delete plugin.cniVersion;
  delete plugin.name;
  const conflist = { cniVersion: "1.0.0", name: "podnet", plugins: [plugin] };
  const pod = await createPod("lc");
  const args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=lc;K8S_POD_INFRA_CONTAINER_ID=ctr-lc;K8S_POD_UID=1234;OVSPLANE_SEGMENT=7";
  const add = await runDriver({ node: N, command: "add", conflist, containerID: "ctr-lc", netns: pod, path: [BIN_DIR, REF_DIR], args });
  assert.is(add.code, 0, add.stderr);
  assert.is(add.json.cniVersion, "1.0.0");
  assert.equal(await pod.addresses(), [add.json.ips[0].address]);
  assert.ok(await pod.ping("10.244.7.1"));
  const chk = await runDriver({ node: N, command: "check", conflist, containerID: "ctr-lc", netns: pod, path: [BIN_DIR, REF_DIR], args });
  assert.is(chk.code, 0, chk.stderr);
  const del = await runDriver({ node: N, command: "del", conflist, containerID: "ctr-lc", netns: pod, path: [BIN_DIR, REF_DIR], args });
  assert.is(del.code, 0, del.stderr);
  assert.is((await podFlowLines(N)).length, 0);
  assert.not.ok(existsSync(join(dir, "podnet", add.json.ips[0].address.split("/")[0])));
  assert.equal(readdirSync(join(dir, "podnet")).filter((f) => /^\d/.test(f)), []);
});

t.run();
