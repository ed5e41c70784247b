// ovsplanectl install into a temporary root, then the installed executables used with Node.js and Bun hidden.
import { chmodSync, existsSync, lstatSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { run } from "../../lib/host/exec.ts";
import { createNode, createPod, runPlugin, teardownAll, REPO_ROOT, type SimNode } from "../harness/testbed.ts";
import { BIN_DIR, netConf, rmTemp, tempDir } from "./common.ts";

const t = suite("install");
const CTL = join(BIN_DIR, "ovsplanectl");
let root: string;
let N: SimNode;

t.before(async () => {
  root = tempDir("ovsp-root-");
  N = await createNode({ name: "i", underlayIP: "198.18.5.1" });
});

t.after(async () => {
  await teardownAll();
  rmTemp(root);
});

const ctl = (...args: string[]) => run([CTL, "install", "--bin-dir", join(root, "bin"), "--conf-dir", join(root, "net.d"), ...args], { allowFail: true });
const FLAGS = ["--pod-cidr", "10.244.5.0/24", "--local-ip", "198.18.5.1", "--peer", "198.18.5.2=10.244.6.0/24", "--segment", "5"];

t("--dry-run shows the plan and changes nothing", async () => {
  const r = await ctl(...FLAGS, "--dry-run");
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /would copy/);
  assert.match(r.stdout, /would write .*10-ovsplane\.conflist/);
  assert.not.ok(existsSync(join(root, "bin")));
  assert.not.ok(existsSync(join(root, "net.d")));
});

t("install copies one executable, links the other names to it, writes a marked conflist; re-running is a no-op", async () => {
  const r = await ctl(...FLAGS);
  assert.is(r.code, 0, r.stderr);
  assert.ok(lstatSync(join(root, "bin/ovsplane")).isFile());
  for (const l of ["ovsplane-ipam", "ovsplanectl"]) assert.is(readlinkSync(join(root, "bin", l)), "ovsplane");
  const conf = JSON.parse(readFileSync(join(root, "net.d/10-ovsplane.conflist"), "utf8"));
  assert.is(conf["ovsplane.dev/managed-by"], "ovsplanectl");
  assert.equal(conf.plugins[0].peers, [{ nodeIP: "198.18.5.2", podCIDR: "10.244.6.0/24" }]);
  assert.is(conf.plugins[0].segment, 5);
  const again = await ctl(...FLAGS);
  assert.is(again.code, 0);
  assert.match(again.stdout, /nothing to do/);
});

t("invalid flags are refused with the field named, before anything is written", async () => {
  const r = await ctl("--pod-cidr", "10.244.5.0/33", "--conf-dir", join(root, "other.d"));
  assert.is(r.code, 1);
  assert.match(r.stderr, /ipam\.ranges\[0\]\[0\]\.subnet "10\.244\.5\.0\/33": prefix too long/);
  assert.not.ok(/\n\s+at /.test(r.stderr), "no stack trace");
});

t("a conflist ovsplanectl did not write is kept unless --force", async () => {
  const dir = join(root, "foreign.d");
  await run(["mkdir", "-p", dir]);
  writeFileSync(join(dir, "10-ovsplane.conflist"), '{"cniVersion":"1.0.0","name":"mine","plugins":[{"type":"bridge"}]}\n');
  const r = await ctl(...FLAGS, "--conf-dir", dir);
  assert.is(r.code, 1);
  assert.match(r.stderr, /not written by ovsplanectl/);
  assert.match(readFileSync(join(dir, "10-ovsplane.conflist"), "utf8"), /"mine"/);
  const f = await ctl(...FLAGS, "--conf-dir", dir, "--force");
  assert.is(f.code, 0, f.stderr);
  assert.match(readFileSync(join(dir, "10-ovsplane.conflist"), "utf8"), /ovsplanectl/);
});

t("the installed executables work with node and bun hidden from the host", async () => {
  const masked = ["/usr/bin/node", "/usr/local/bin/node", join(REPO_ROOT, "node_modules/.bin/bun"), join(REPO_ROOT, "node_modules/bun/bin/bun.exe"),
    join(REPO_ROOT, "node_modules/@oven/bun-linux-x64/bin/bun")].filter((p) => existsSync(p));
  // A wrapper named like the plugin: a private mount namespace where node and bun are /dev/null.
  const wrapDir = join(root, "masked");
  await run(["mkdir", "-p", wrapDir]);
  for (const name of ["ovsplane", "ovsplane-ipam"]) {
    const w = join(wrapDir, name);
    writeFileSync(w, `#!/bin/sh\nexec unshare -m sh -c '${masked.map((m) => `mount --bind /dev/null ${m}`).join(" && ")} && ! node --version 2>/dev/null && ! command -v bun && exec ${join(root, "bin", name)}'\n`);
    chmodSync(w, 0o755);
  }
  const dir = tempDir();
  try {
    const conf = netConf(N, { podCIDR: "10.244.5.0/24", dataDir: dir, extra: { mtu: 1450 } });
    const pod = await createPod("masked");
    const add = await runPlugin({ bin: join(wrapDir, "ovsplane"), node: N, command: "ADD", containerID: "ctr-m", netns: pod, path: [join(root, "bin")], config: conf });
    assert.is(add.code, 0, add.stdout + add.stderr);
    assert.ok(await pod.ping("10.244.5.1"));
    const ipam = await runPlugin({ bin: join(wrapDir, "ovsplane-ipam"), node: N, command: "VERSION", config: "{}" });
    assert.match(ipam.stdout, /supportedVersions/);
    const del = await runPlugin({ bin: join(wrapDir, "ovsplane"), node: N, command: "DEL", containerID: "ctr-m", netns: pod, path: [join(root, "bin")], config: conf });
    assert.is(del.code, 0, del.stdout + del.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.run();
