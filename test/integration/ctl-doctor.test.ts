// ovsplanectl doctor, gc and log on a simulated node: healthy, then each planted breakage reported and residue removed.
import { mkdirSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createNode, runPlugin, teardownAll, testbed, type SimNode } from "../harness/testbed.ts";
import { leaseFiles, scoped, type Scope } from "../harness/fixtures.ts";
import { hostVethName } from "../../lib/dataplane/names.ts";
import { addPod, BIN_DIR, CNI_PATH, delPod, netConf, OVSPLANE, rmTemp, tempDir, type AttachedPod } from "./common.ts";

const CTL = join(BIN_DIR, "ovsplanectl");
const t = suite("ctl-doctor");
let N: SimNode;
let dir: string;
let confDir: string;
let conf: Record<string, unknown>;

t.before(async () => {
  dir = tempDir();
  confDir = join(dir, "net.d");
  mkdirSync(confDir);
  N = await createNode({ name: "doc", underlayIP: "198.18.7.1" });
  await testbed.attachUnderlay(N);
  conf = netConf(N, { podCIDR: "10.244.7.0/24", dataDir: dir });
  const { cniVersion, name, ...plugin } = conf;
  writeFileSync(join(confDir, "10-ovsplane.conflist"), JSON.stringify({ cniVersion, name, plugins: [plugin] }));
});

t.after(async () => {
  await teardownAll();
  rmTemp(dir);
});

interface Finding { check: string; verdict: string; detail: string; fix?: string }

/** Runs ovsplanectl inside the node (its netns and OVS env). */
const ctl = (...args: string[]) => N.exec([CTL, ...args, "--conf-dir", confDir], { allowFail: true, timeoutMs: 30_000 });

async function doctor(): Promise<{ code: number; healthy: boolean; failed: Finding[]; text: string }> {
  const r = await ctl("doctor", "--json");
  const j = JSON.parse(r.stdout) as { healthy: boolean; findings: Finding[] };
  return { code: r.code, healthy: j.healthy, failed: j.findings.filter((f) => f.verdict === "fail"), text: r.stdout };
}

/** Asserts doctor fails with exactly one kind of failing check matching re (and a fix). */
async function expectFailure(check: RegExp, detail: RegExp): Promise<void> {
  const d = await doctor();
  assert.is(d.code, 1, d.text);
  assert.ok(d.failed.some((f) => check.test(f.check) && detail.test(f.detail) && f.fix), `no ${check} ${detail} in ${d.text}`);
}

async function expectHealthy(): Promise<void> {
  const d = await doctor();
  assert.is(d.code, 0, d.text);
  assert.ok(d.healthy);
}

const attach = (s: Scope, name: string): Promise<AttachedPod> => s.use(() => addPod(N, conf, name), (p) => delPod(N, conf, p));

t("a healthy node: doctor exit 0 (human output too), gc --dry-run finds nothing", scoped(async (s) => {
  await attach(s, "h1");
  await attach(s, "h2");
  await expectHealthy();
  const human = await ctl("doctor");
  assert.is(human.code, 0, human.stdout + human.stderr);
  assert.match(human.stdout, /healthy/);
  const dry = await ctl("gc", "--dry-run");
  assert.match(dry.stdout, /podnet: no residue/);
}));

t("a deleted pod flow, a wrong MTU, ovs-vswitchd stopped: each reported with exit 1", scoped(async (s) => {
  const p = await attach(s, "f1");
  const veth = hostVethName(p.containerID, "eth0");
  await expectHealthy();
  await N.exec(["ip", "link", "set", veth, "mtu", "1400"]);
  await expectFailure(/^mtu/, new RegExp(`${veth}.*MTU 1400`));
  await N.exec(["ip", "link", "set", veth, "mtu", "1450"]);
  await expectHealthy();
  await N.stopVswitchd();
  try {
    await expectFailure(/^ovs/, /ovs-vswitchd does not serve/);
  } finally {
    await N.startVswitchd();
  }
  // The restarted ovs-vswitchd lost every flow (OVS does not keep them): the pod's flows are missing.
  await expectFailure(/^pod flows/, /default\/f1: 0 of \d+ flows/);
}));

t("a deleted pod flow is reported", scoped(async (s) => {
  await attach(s, "f2");
  await expectHealthy();
  const out = await N.ofctl("--no-stats", "dump-flows", N.ofSocket("br-int"), "cookie=0x6f76040000000000/0xffffff0000000000");
  const line = out.split("\n").find((l) => l.includes("cookie="))!;
  const cookie = /cookie=(0x[0-9a-f]+)/.exec(line)![1]!;
  const table = /table=(\d+)/.exec(line)?.[1] ?? "0";
  await N.ofctl("del-flows", N.ofSocket("br-int"), `cookie=${cookie}/-1,table=${table}`);
  await expectFailure(/^pod flows/, /default\/f2: .*missing/);
}));

t("residue (port without veth, veth without port, stray lease, orphan pod flows): doctor reports, gc removes through CNI GC", scoped(async (s) => {
  const keep = await attach(s, "r0");
  const a = await attach(s, "r1");
  const b = await attach(s, "r2");
  await expectHealthy();
  // r1's host veth removed: its port has no veth.
  await N.exec(["ip", "link", "del", hostVethName(a.containerID, "eth0")]);
  // r2's port removed behind ovsplane's back: its veth has no port, its flows no port, its lease no attachment.
  await N.vsctl("del-port", "br-int", hostVethName(b.containerID, "eth0"));
  // A lease nobody holds.
  writeFileSync(join(dir, "podnet", "10.244.7.250"), "ctr-ghost\r\neth0");
  const d = await doctor();
  assert.is(d.code, 1, d.text);
  const residue = d.failed.filter((f) => f.check === "residue podnet").map((f) => f.detail).join("\n");
  assert.match(residue, new RegExp(`port ${hostVethName(a.containerID, "eth0")} \\(ctr-r1/eth0\\): host veth gone`));
  assert.match(residue, new RegExp(`veth ${hostVethName(b.containerID, "eth0")} \\(ctr-r2/eth0\\) has no port`));
  assert.match(residue, /lease 10\.244\.7\.250 of ctr-ghost\/eth0 has no attachment/);
  assert.match(residue, /lease .* of ctr-r2\/eth0 has no attachment/);
  assert.match(residue, /pod flow\(s\) of id 0x[0-9a-f]+ have no port/);
  // Dry run: shows, changes nothing.
  const leases = leaseFiles(dir);
  const dry = await ctl("gc", "--dry-run", "--json");
  assert.is(dry.code, 0, dry.stdout + dry.stderr);
  const plan = JSON.parse(dry.stdout).networks[0];
  assert.is(plan.removed, false);
  assert.is(plan.residue.ports.length, 1);
  assert.is(plan.residue.veths.length, 1);
  assert.is(plan.residue.leases.length, 3, dry.stdout); // r1's, r2's and the ghost's
  assert.is(plan.residue.flows.length, 1);
  assert.equal(leaseFiles(dir), leases);
  assert.is((await doctor()).text, d.text, "dry run changed nothing");
  const human = await ctl("gc");
  assert.is(human.code, 0, human.stdout + human.stderr);
  assert.match(human.stdout, /podnet: removed:/);
  await expectHealthy();
  assert.equal(leaseFiles(dir), [keep.ip]);
  assert.not.ok(existsSync(join(dir, "podnet", "10.244.7.250")));
  assert.match((await ctl("gc", "--dry-run")).stdout, /podnet: no residue/);
  assert.ok(keep.pod && (await keep.pod.exec(["ip", "-o", "addr", "show", "eth0"])).stdout.includes(keep.ip), "the live pod keeps its address");
}));

t("the call log: a failed ADD with its code and message, shown by log --errors --json; successes with IPs and steps", scoped(async (s) => {
  const p = await attach(s, "l1");
  const bad = await runPlugin({ bin: OVSPLANE, node: N, command: "ADD", containerID: "ctr-badns", netns: "/var/run/netns/ovsp-no-such-ns", args: { K8S_POD_NAMESPACE: "default", K8S_POD_NAME: "badns", IgnoreUnknown: "1" }, path: CNI_PATH, config: conf });
  assert.is(bad.json?.code, 4, bad.stdout);
  const errs = await ctl("log", "--errors", "--json");
  assert.is(errs.code, 0, errs.stderr);
  const list = JSON.parse(errs.stdout) as { command: string; code: number; msg: string; pod?: string; ok: boolean }[];
  const rec = list.find((r) => r.pod === "default/badns");
  assert.ok(rec, errs.stdout);
  assert.is(rec!.command, "ADD");
  assert.is(rec!.code, 4);
  assert.match(rec!.msg, /no such network namespace/);
  assert.ok(list.every((r) => !r.ok));
  const all = JSON.parse((await ctl("log", "--pod", "default/l1", "--json")).stdout) as { command: string; ok: boolean; ips?: string[]; steps: Record<string, number>; ms: number }[];
  const add = all.find((r) => r.command === "ADD" && r.ok)!;
  assert.ok(add, JSON.stringify(all));
  assert.ok(add.ips?.[0]?.startsWith(`${p.ip}/`), JSON.stringify(add));
  assert.ok(["IPAM", "creating the veth pair", "adding the OVS port"].every((k) => typeof add.steps[k] === "number"), JSON.stringify(add.steps));
  assert.ok(add.ms > 0);
  const table = await ctl("log", "--errors");
  assert.match(table.stdout, /default\/badns.*code 4/);
}));

t.run();
