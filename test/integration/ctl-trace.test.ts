// ovsplanectl trace on two simulated nodes: verdicts for same/cross segment, cross node, spoofed source, node → pod, egress.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { teardownAll, type SimNode } from "../harness/testbed.ts";
import { addPod, BIN_DIR, rmTemp, tempDir, twoNodes, type AttachedPod } from "./common.ts";

const CTL = join(BIN_DIR, "ovsplanectl");
const t = suite("ovsplanectl trace");
let A: SimNode, B: SimNode;
const dirs: string[] = [];
let confDirA = "";
const pods: Record<string, AttachedPod> = {};

/** Writes a network config as a conflist into a fresh conf dir. */
function confDir(conf: Record<string, unknown>): string {
  const d = tempDir("ovsp-conf-");
  dirs.push(d);
  const { cniVersion, name, ...plugin } = conf;
  writeFileSync(join(d, "10-ovsplane.conflist"), JSON.stringify({ cniVersion, name, plugins: [{ ...plugin }] }));
  return d;
}

/** Runs `ovsplanectl trace ARGS --conf-dir <A's> [--json]` inside node A; with TRACE_CAPTURE=DIR, keeps ofproto/trace's raw text. */
async function trace(args: string[], opts: { json?: boolean; capture?: string } = {}): Promise<any> {
  const asJson = opts.json ?? true;
  const r = await A.exec([CTL, "trace", ...args, "--conf-dir", confDirA, ...(asJson ? ["--json", "--raw"] : [])], { allowFail: true });
  assert.is(r.code, 0, `trace ${args.join(" ")}: ${r.stderr}`);
  if (!asJson) return r.stdout;
  const doc = JSON.parse(r.stdout);
  const dir = process.env.TRACE_CAPTURE;
  if (dir && opts.capture) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `trace-${opts.capture}.txt`), doc.raw);
  }
  return doc;
}

t.before(async () => {
  const ipamA = tempDir();
  const ipamB = tempDir();
  dirs.push(ipamA, ipamB);
  let confA: Record<string, unknown>, confB: Record<string, unknown>;
  ({ A, B, confA, confB } = await twoNodes([ipamA, ipamB]));
  confDirA = confDir(confA);
  confDir(confB);
  pods.a1 = await addPod(A, confA, "a1", 100);
  pods.a2 = await addPod(A, confA, "a2", 100);
  pods.a3 = await addPod(A, confA, "a3", 200);
  pods.b1 = await addPod(B, confB, "b1", 100);
});

t.after(async () => {
  await teardownAll();
  for (const d of dirs) rmTemp(d);
});

t("same segment on one node: delivered to a2", async () => {
  const r = await trace(["--from", "default/a1", "--to", `${pods.a2!.ip}:80`], { capture: "same" });
  assert.is(r.verdict.kind, "delivered", r.summary);
  assert.is(r.verdict.pod, "default/a2");
  assert.is(r.from.pod, "default/a1");
  assert.is(r.to.proto, "tcp");
  assert.ok(r.resumes.length >= 1, "followed the conntrack recirculation");
});

t("different segments on one node: dropped in the segment check, naming 100 and 200", async () => {
  const r = await trace(["--from", "default/a1", "--to", `${pods.a3!.ip}:80`], { capture: "cross" });
  assert.is(r.verdict.kind, "dropped", r.summary);
  assert.is(r.verdict.table, 40);
  assert.is(r.verdict.tableName, "segment check");
  assert.match(r.verdict.reason, "segment 100");
  assert.match(r.verdict.reason, "segment 200");
});

t("across nodes: sent over the tunnel to 198.18.0.2 with VNI 100", async () => {
  const r = await trace(["--from", "default/a1", "--to", `${pods.b1!.ip}:53`, "--proto", "udp"], { capture: "remote" });
  assert.is(r.verdict.kind, "tunnel", r.summary);
  assert.is(r.verdict.peer, "198.18.0.2");
  assert.is(r.verdict.vni, 100);
  assert.ok(r.flow.includes("udp_dst=53"), r.flow);
  // Once the underlay neighbour is known, ofproto/trace follows the encapsulated packet into br-phy: still the same verdict.
  assert.ok(await pods.a1!.pod.ping(pods.b1!.ip, { tries: 8 }), "a1 -> b1");
  const again = await trace(["--from", "default/a1", "--to", `${pods.b1!.ip}:53`, "--proto", "udp"], { capture: "remote-resolved" });
  assert.is(again.verdict.kind, "tunnel", again.summary);
  assert.is(again.verdict.vni, 100);
  assert.is(again.verdict.note, undefined);
  assert.ok(again.steps.some((s: any) => s.bridge === "br-phy"), "the underlay bridge's steps are marked as such");
  assert.ok(again.datapathActions.includes("vni=0x64"), again.datapathActions);
});

t("a spoofed source address: dropped by the spoof guard", async () => {
  const r = await trace(["--from", "ctr-a1", "--to", pods.a2!.ip, "--src-ip", "10.244.1.250"], { capture: "spoof" });
  assert.is(r.verdict.kind, "dropped", r.summary);
  assert.is(r.verdict.tableName, "spoof guard");
  assert.match(r.verdict.reason, "10.244.1.250");
  assert.is(r.to.proto, "icmp");
});

t("the node to a pod of any segment: delivered", async () => {
  const r = await trace(["--from", "node", "--to", `${pods.a3!.ip}:8080`], { capture: "node" });
  assert.is(r.from.kind, "node");
  assert.is(r.from.ip, "10.244.1.1");
  assert.is(r.verdict.kind, "delivered", r.summary);
  assert.is(r.verdict.pod, "default/a3");
});

t("a pod to an outside address: handed to the node", async () => {
  const r = await trace(["--from", "default/a1", "--to", "192.0.2.10:443"], { capture: "outside" });
  assert.is(r.verdict.kind, "node", r.summary);
});

t("the human output names the tables and the verdict", async () => {
  const text: string = await trace(["--from", "default/a1", "--to", `${pods.a3!.ip}:80`], { json: false });
  for (const name of ["classifier", "spoof guard", "conntrack", "L3 forwarding", "segment check", "pod default/a1", "verdict: dropped in table 40"]) {
    assert.ok(text.includes(name), `${name} in:\n${text}`);
  }
  if (process.env.TRACE_CAPTURE) writeFileSync(join(process.env.TRACE_CAPTURE, "human-cross.txt"), text);
  const remote: string = await trace(["--from", "default/a1", "--to", `${pods.b1!.ip}:53`, "--proto", "udp"], { json: false });
  assert.ok(remote.includes("verdict: sent to node 198.18.0.2 over the tunnel, VNI 100"), remote);
  if (process.env.TRACE_CAPTURE) writeFileSync(join(process.env.TRACE_CAPTURE, "human-remote.txt"), remote);
});

t("an unknown pod is one error line, exit 1", async () => {
  const r = await A.exec([CTL, "trace", "--from", "default/nope", "--to", "10.244.1.9", "--conf-dir", confDirA], { allowFail: true });
  assert.is(r.code, 1);
  assert.match(r.stderr, /--from default\/nope: no pod/);
});

t.run();
