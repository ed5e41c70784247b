// One node: every spec version, 50 concurrent ADDs and DELs, interop with the reference plugins, bad input.
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createNode, createPod, runPlugin, teardownAll, type SimNode } from "../harness/testbed.ts";
import { leaseFiles, scoped } from "../harness/fixtures.ts";
import { addPod, CNI_PATH, delPod, netConf, OVSPLANE, OVSPLANE_IPAM, POD_FLOWS, podFlowLines, REF_DIR, rmTemp, tempDir } from "./common.ts";

const t = suite("CNI contract");
let N: SimNode;
let dir: string;
let conf: Record<string, unknown>;

t.before(async () => {
  dir = tempDir();
  N = await createNode({ name: "c", underlayIP: "198.18.2.1" });
  conf = netConf(N, { podCIDR: "10.244.8.0/24", dataDir: dir, extra: { mtu: 1450 } });
});

t.after(async () => {
  await teardownAll();
  rmTemp(dir);
});

// Each test's attachments are undone when it ends (scoped), pass or fail, so every test finds a clean node.
const leases = (net = "podnet") => leaseFiles(dir, net);

t("every spec version: ADD prints its result shape, DEL cleans up", scoped(async (s) => {
  for (const v of ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
    const pod = await createPod(`v${v.replace(/\./g, "")}`);
    const c = { ...conf, cniVersion: v };
    const id = `ctr-v${v}`;
    const deleted = s.defer(() => runPlugin({ bin: OVSPLANE, node: N, command: "DEL", containerID: id, netns: pod, path: CNI_PATH, config: c }));
    const r = await runPlugin({ bin: OVSPLANE, node: N, command: "ADD", containerID: id, netns: pod, path: CNI_PATH, config: c });
    assert.is(r.code, 0, `${v}: ${r.stdout}`);
    assert.is(r.json.cniVersion, v);
    if (v < "0.3.0") {
      assert.ok(r.json.ip4.ip.startsWith("10.244.8."), v);
      assert.is(r.json.interfaces, undefined);
    } else {
      assert.is(r.json.interfaces[1].sandbox, pod.netnsPath, v);
      if (v < "1.0.0") assert.is(r.json.ips[0].version, "4", v);
      else assert.is(r.json.interfaces[1].mtu, 1450, v);
    }
    if (v >= "0.4.0") {
      const chk = await runPlugin({ bin: OVSPLANE, node: N, command: "CHECK", containerID: id, netns: pod, path: CNI_PATH, config: { ...c, prevResult: r.json } });
      assert.is(chk.code, 0, `${v} CHECK: ${chk.stdout}`);
    }
    const d = await runPlugin({ bin: OVSPLANE, node: N, command: "DEL", containerID: id, netns: pod, path: CNI_PATH, config: c });
    assert.is(d.code, 0, `${v} DEL: ${d.stdout}`);
    deleted();
  }
  assert.equal(leases(), []);
}));

t("50 concurrent ADDs get 50 distinct addresses; 50 DELs leave no residue", scoped(async (s) => {
  const pods = await Promise.all(Array.from({ length: 50 }, (_, i) => createPod(`cc${i}`)));
  const del = (i: number) => runPlugin({ bin: OVSPLANE, node: N, command: "DEL", containerID: `ctr-cc${i}`, netns: pods[i]!, path: CNI_PATH, config: conf, timeoutMs: 120_000 });
  const deleted = s.defer(() => Promise.all(pods.map((_, i) => del(i))));
  const adds = await Promise.all(pods.map((p, i) =>
    runPlugin({ bin: OVSPLANE, node: N, command: "ADD", containerID: `ctr-cc${i}`, netns: p, args: `IgnoreUnknown=1;OVSPLANE_SEGMENT=${1 + (i % 3)}`, path: CNI_PATH, config: conf, timeoutMs: 120_000 })));
  const failed = adds.filter((r) => r.code !== 0);
  assert.is(failed.length, 0, failed.map((r) => r.stdout + r.stderr).join("\n"));
  const ips = adds.map((r) => r.json.ips[0].address);
  assert.is(new Set(ips).size, 50, "no duplicate address");
  assert.is(leases().length, 50);
  assert.is((await podFlowLines(N)).length, 50 * POD_FLOWS);
  const dels = await Promise.all(pods.map((_, i) => del(i)));
  assert.is(dels.filter((r) => r.code !== 0).length, 0, dels.map((r) => r.stdout).join("\n"));
  deleted();
  assert.equal(leases(), []);
  assert.is((await podFlowLines(N)).length, 0);
  const ports = (await N.vsctl("list-ports", "br-int")).split("\n").filter((p) => p.startsWith("ovsp") && !p.startsWith("ovsp-") && p !== "ovsplane-gw");
  assert.equal(ports, []);
  const segFlows = (await N.dumpFlows("br-int", 40)).filter((l) => l.includes("cookie=0x6f7602"));
  assert.equal(segFlows, [], "segment flows go with the last pod of the segment");
  const links = (await N.exec(["ip", "-o", "link"])).stdout.split("\n").filter((l) => /: ovsp[0-9a-f]{11}[@:]/.test(l));
  assert.equal(links, []);
}));

t("ovsplane works with Debian's host-local as its IPAM", scoped(async (s) => {
  const c = { ...conf, cniVersion: "1.0.0", ipam: { ...(conf.ipam as object), type: "host-local" } };
  const pod = await createPod("hl");
  const del = () => runPlugin({ bin: OVSPLANE, node: N, command: "DEL", containerID: "ctr-hl", netns: pod, path: CNI_PATH, config: c });
  const deleted = s.defer(del);
  const r = await runPlugin({ bin: OVSPLANE, node: N, command: "ADD", containerID: "ctr-hl", netns: pod, path: CNI_PATH, config: c });
  assert.is(r.code, 0, r.stdout);
  assert.ok(await pod.ping("10.244.8.1"));
  assert.is(leases().length, 1);
  const d = await del();
  assert.is(d.code, 0, d.stdout);
  deleted();
  assert.equal(leases(), []);
}));

t("ovsplane-ipam works as the IPAM of Debian's bridge plugin", scoped(async (s) => {
  const c = {
    cniVersion: "1.0.0", name: "refbridge", type: "bridge", bridge: "cni-ref0", isGateway: true,
    ipam: { type: "ovsplane-ipam", ranges: [[{ subnet: "10.99.0.0/24" }]], dataDir: dir },
  };
  const pod = await createPod("refbr");
  const del = () => runPlugin({ bin: join(REF_DIR, "bridge"), node: N, command: "DEL", containerID: "ctr-refbr", netns: pod, path: [join(OVSPLANE_IPAM, ".."), REF_DIR], config: c });
  const deleted = s.defer(del);
  const r = await runPlugin({ bin: join(REF_DIR, "bridge"), node: N, command: "ADD", containerID: "ctr-refbr", netns: pod, path: [join(OVSPLANE_IPAM, ".."), REF_DIR], config: c });
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.is(r.json.ips[0].address, "10.99.0.2/24");
  assert.ok(await pod.ping("10.99.0.1"));
  const d = await del();
  assert.is(d.code, 0, d.stdout);
  deleted();
  assert.equal(leases("refbridge"), []);
}));

t("a step failing after IPAM rolls everything back, the lease included, and says which step failed", async () => {
  const warm = await addPod(N, conf, "rb-warm"); // a node that has served a pod (its bridge is up), with none left
  assert.is((await delPod(N, conf, warm)).code, 0);
  const pod = await createPod("rollback");
  await pod.exec(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0"]); // the pod's eth0 is taken
  const r = await runPlugin({ bin: OVSPLANE, node: N, command: "ADD", containerID: "ctr-rb", netns: pod, path: CNI_PATH, config: conf });
  assert.is(r.code, 1);
  assert.match(r.json.msg, /creating the veth pair/);
  assert.equal(leases(), [], "lease released");
  const ports = (await N.vsctl("list-ports", "br-int")).split("\n").filter((p) => /^ovsp[0-9a-f]{11}$/.test(p));
  assert.equal(ports, []);
  assert.is((await podFlowLines(N)).length, 0);
  const links = (await N.exec(["ip", "-o", "link"])).stdout.split("\n").filter((l) => /: ovsp[0-9a-f]{11}[@:]/.test(l));
  assert.equal(links, []);
});

t("bad input: one CNI error JSON, the right code, nothing changed", async () => {
  const pod = await createPod("bad");
  const cases: [string, Partial<Parameters<typeof runPlugin>[0]>, number][] = [
    ["bad JSON", { config: "{not json" }, 6],
    ["unknown version", { config: { ...conf, cniVersion: "9.9.9" } }, 1],
    ["container ID with ..", { containerID: "../etc" }, 4],
    ["network name with /", { config: { ...conf, name: "a/b" } }, 7],
    ["ifname too long", { ifname: "abcdefghijklmnop" }, 4],
    ["subnet that does not parse", { config: { ...conf, ipam: { ...(conf.ipam as object), ranges: [[{ subnet: "10.0.0.0/33" }]] } } }, 7],
    ["VNI out of range", { config: { ...conf, segment: 16777216 } }, 7],
    ["VNI in CNI_ARGS out of range", { args: "IgnoreUnknown=1;OVSPLANE_SEGMENT=0" }, 4],
    ["unknown CNI_ARGS", { args: "FOO=bar" }, 4],
    ["IPv6 range", { config: { ...conf, ipam: { ...(conf.ipam as object), ranges: [[{ subnet: "fd00::/64" }]] } } }, 7],
  ];
  for (const [what, o, code] of cases) {
    const r = await runPlugin({ bin: OVSPLANE, node: N, command: "ADD", containerID: "ctr-bad", netns: pod, path: CNI_PATH, config: conf, ...o });
    assert.is(r.code, 1, what);
    assert.is(r.json?.code, code, `${what}: ${r.stdout}`);
    assert.ok(typeof r.json.msg === "string" && !/\n\s+at /.test(r.stdout), `${what}: no stack trace`);
    assert.is(r.stdout.trim().split("\n").length, 1, `${what}: one JSON line`);
  }
  assert.equal(leases(), []);
  assert.is((await pod.exec(["ip", "-o", "link"])).stdout.trim().split("\n").length, 1);
});

t.run();
