// A static node with 1,000 peers: ADD and DEL work, pods ping across the overlay, and an ADD does not rewrite the peers' flows.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connectNodes, createNode, createPod, runPlugin, teardownAll, type SimNode } from "../harness/testbed.ts";
import { scoped } from "../harness/fixtures.ts";
import { networkId } from "../../lib/dataplane/names.ts";
import { cookie, CookieKind, NODE_COOKIE, peerCookie, routeCookie } from "../../lib/dataplane/pipeline.ts";
import { addPod, CNI_PATH, delPod, netConf, OVSPLANE, POD_FLOWS, podFlowLines, rmTemp, tempDir, type AttachedPod } from "./common.ts";

const t = suite("1,000 static peers");
const PEERS = 1000;
let A: SimNode;
let B: SimNode;
let dirs: string[] = [];

/** Node B (198.18.0.2, pods 10.244.2.0/24) and 999 peers that do not exist (198.19.x.y, pods 10.x.y.0/24). */
const peers = [
  { nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" },
  ...Array.from({ length: PEERS - 1 }, (_, i) => ({ nodeIP: `198.19.${(i + 1) >> 8}.${(i + 1) & 255}`, podCIDR: `10.${(i >> 8) + 1}.${i & 255}.0/24` })),
];
const probe = peers[500]!; // a fake peer whose flows are deleted by hand
const ipNum = (ip: string) => ip.split(".").reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n);
const hexCookie = (c: bigint) => `0x${c.toString(16)}/-1`;

t.before(async () => {
  dirs = [tempDir(), tempDir()];
  A = await createNode({ name: "pa", underlayIP: "198.18.0.1" });
  B = await createNode({ name: "pb", underlayIP: "198.18.0.2" });
  await connectNodes(A, B);
});

t.after(async () => {
  await teardownAll();
  dirs.forEach(rmTemp);
});

/** Flows on A's bridge with exactly this cookie. */
async function flowsOf(c: bigint): Promise<string[]> {
  const out = await A.ofctl("--no-stats", "dump-flows", A.ofSocket("br-int"), `cookie=${hexCookie(c)}`);
  return out.split("\n").filter((l) => l.includes("cookie="));
}

/** ADD with OVSPLANE_TRACE=1 on A; returns the pod and the trace lines. */
async function tracedAdd(conf: Record<string, unknown>, name: string): Promise<{ p: AttachedPod; trace: string[] }> {
  const pod = await createPod(name);
  const containerID = `ctr-${name}`;
  const result = await runPlugin({ bin: OVSPLANE, node: A, command: "ADD", containerID, netns: pod, args: "IgnoreUnknown=1", path: CNI_PATH, config: conf, env: { OVSPLANE_TRACE: "1" } });
  assert.is(result.code, 0, `ADD ${name}: ${result.stdout} ${result.stderr}`);
  return { p: { pod, containerID, ip: String(result.json.ips[0].address).split("/")[0]!, result }, trace: result.stderr.split("\n") };
}

const bundles = (trace: string[]) => trace.flatMap((l) => /OpenFlow bundle of (\d+) changes/.exec(l)?.[1] ?? []).map(Number);

t("ADD with 1,000 peers writes only the pod's flows while the fingerprint holds; a flush of the defaults makes the next ADD repair every peer", scoped(async (s) => {
  const confA = netConf(A, { podCIDR: "10.244.1.0/24", peers, dataDir: dirs[0]!, extra: { clusterCIDR: "10.0.0.0/8" } });
  const confB = netConf(B, { podCIDR: "10.244.2.0/24", peers: [{ nodeIP: "198.18.0.1", podCIDR: "10.244.1.0/24" }], dataDir: dirs[1]!, extra: { clusterCIDR: "10.0.0.0/8" } });
  const pods: [SimNode, Record<string, unknown>, AttachedPod][] = [];
  s.defer(() => Promise.all(pods.map(([n, c, p]) => delPod(n, c, p))));

  const first = await tracedAdd(confA, "pk1");
  pods.push([A, confA, first.p]);
  assert.ok(bundles(first.trace)[0]! > 3 * PEERS, `the first ADD writes the node-wide flows of 1,000 peers: ${bundles(first.trace)}`);
  const probeFlows = [peerCookie(ipNum(probe.nodeIP)), routeCookie(networkId("podnet"), ipNum(probe.nodeIP))];
  for (const c of probeFlows) assert.ok((await flowsOf(c)).length > 0, `a peer's flows (cookie ${hexCookie(c)}) after the first ADD`);
  const server = await addPod(B, confB, "pkb");
  pods.push([B, confB, server]);
  assert.ok(await first.p.pod.ping(server.ip, { tries: 5 }), "pod on A reaches the pod on B (peer 1 of 1,000)");

  // A peer's flows deleted by hand stay deleted: the next ADD trusts the fingerprint and writes only its own flows.
  for (const c of probeFlows) await A.ofctl("del-flows", A.ofSocket("br-int"), `cookie=${hexCookie(c)}`);
  const second = await tracedAdd(confA, "pk2");
  pods.push([A, confA, second.p]);
  assert.ok(second.trace.some((l) => l.includes("node-wide flows of podnet hold")), second.trace.join("\n"));
  assert.equal(bundles(second.trace), [1 + POD_FLOWS], "one bundle: the segment's flow and the pod's own");
  for (const c of probeFlows) assert.is((await flowsOf(c)).length, 0, "the hand-deleted peer flow is not rewritten");
  assert.ok(await second.p.pod.ping(server.ip, { tries: 5 }), "the second pod reaches B");

  // The pipeline defaults flushed (as an ovs-vswitchd restart would): the next ADD reads back and repairs.
  await A.ofctl("del-flows", A.ofSocket("br-int"), `cookie=${hexCookie(NODE_COOKIE)}`);
  const third = await tracedAdd(confA, "pk3");
  pods.push([A, confA, third.p]);
  assert.ok(third.trace.some((l) => l.includes("pipeline defaults gone")), third.trace.join("\n"));
  for (const c of [...probeFlows, NODE_COOKIE]) assert.ok((await flowsOf(c)).length > 0, `cookie ${hexCookie(c)} repaired`);
  assert.ok(await third.p.pod.ping(server.ip, { tries: 5 }), "the third pod reaches B");
  assert.ok(await first.p.pod.ping(third.p.ip, { tries: 3 }), "pods on A reach each other");

  // DEL: every pod's flows go; the peers' flows stay for the node's next pod.
  for (const [n, c, p] of pods.splice(0)) assert.is((await delPod(n, c, p)).code, 0, `DEL ${p.containerID}`);
  assert.equal(await podFlowLines(A), [], "no pod flow left on A");
  const routes = await A.ofctl("--no-stats", "dump-flows", A.ofSocket("br-int"), `cookie=${`0x${cookie(CookieKind.Route, 0n).toString(16)}/0xffffff0000000000`}`);
  assert.ok(routes.split("\n").filter((l) => l.includes("cookie=")).length >= PEERS, "the peers' route flows stay after DEL");
}));

t.run();
