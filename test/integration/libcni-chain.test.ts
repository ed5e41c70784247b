// A chained conflist through libcni (the library inside containerd and CRI-O): ovsplane, then Debian's
// `tuning` (a sysctl in the pod) and `portmap` (hostPort DNAT in the node), ADD / CHECK / DEL with the
// result cache, so CHECK and DEL get the cached prevResult and DEL runs the chain in reverse.
import { chmodSync, existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createNode, createPod, runDriver, sleep, teardownAll, type SimNode, type SimPod } from "../harness/testbed.ts";
import { run as exec } from "../../lib/host/exec.ts";
import { BIN_DIR, netConf, podFlowLines, REF_DIR, rmTemp, tempDir } from "./common.ts";

const t = suite("libcni chain");
let N: SimNode;
let dir: string;
let shimDir: string;

const PATH = [BIN_DIR, REF_DIR];
const SYSCTL = "net.ipv4.conf.eth0.accept_redirects";
const HOST_PORT = 8080;
const CONTAINER_PORT = 80;
/**
 * Debian's portmap 1.1.1 CHECK looks for the per-container DNAT chain in ip6tables too whenever
 * ip6tables' nat table is usable, even for an IPv4-only pod, and fails ("could not check ipv6 dnat:
 * chain CNI-DN-... not found"): containernetworking/plugins#819, fixed upstream after 1.1.1. The
 * pods here are IPv4-only, so the plugins run as on a node without ip6tables: a failing `ip6tables`
 * first in PATH makes go-iptables report IPv6 unusable (portmap then skips IPv6 on ADD, CHECK, DEL).
 */
function ipv4OnlyEnv(): Record<string, string> {
  return { PATH: `${shimDir}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` };
}

const capArgs = { portMappings: [{ hostPort: HOST_PORT, containerPort: CONTAINER_PORT, protocol: "tcp" }] };

t.before(async () => {
  for (const p of ["tuning", "portmap"]) {
    assert.ok(existsSync(join(REF_DIR, p)), `${REF_DIR}/${p} missing: apt-get install containernetworking-plugins`);
  }
  for (const b of ["/usr/sbin/iptables", "/usr/sbin/iptables-save"]) {
    assert.ok(existsSync(b), `${b} missing (portmap needs it): apt-get install iptables (scripts/setup.sh)`);
  }
  dir = tempDir();
  shimDir = tempDir("ovsp-noip6t-");
  writeFileSync(join(shimDir, "ip6tables"), "#!/bin/sh\necho 'ip6tables: not available on this IPv4-only test node' >&2\nexit 3\n");
  chmodSync(join(shimDir, "ip6tables"), 0o755);
  N = await createNode({ name: "ch", underlayIP: "198.18.20.1" });
});

t.after(async () => {
  await teardownAll();
  rmTemp(dir);
  rmTemp(shimDir);
});

function conflist(): Record<string, unknown> {
  const ovsplane = netConf(N, { podCIDR: "10.244.20.0/24", dataDir: dir, extra: { mtu: 1450 } });
  delete ovsplane.cniVersion;
  delete ovsplane.name;
  return {
    cniVersion: "1.0.0",
    name: "podnet",
    plugins: [
      ovsplane,
      { type: "tuning", sysctl: { [SYSCTL]: "0" } },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
    ],
  };
}

const args = (name: string, id: string) =>
  `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=uid-${name}`;

/** The NAT table of the node netns, as `iptables-save -t nat` prints it. */
async function natRules(): Promise<string> {
  return (await N.exec(["iptables-save", "-t", "nat"])).stdout;
}

async function sysctlInPod(pod: SimPod, key: string): Promise<string> {
  return (await pod.exec(["sysctl", "-n", key])).stdout.trim();
}

/** Lease files (one per IP) of network podnet in the IPAM data dir. */
const leases = () => (existsSync(join(dir, "podnet")) ? readdirSync(join(dir, "podnet")).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : []);

/** libcni's result cache (runDriver's default) and its entries for a container. */
const CACHE = () => join(N.runDir, "cni-cache", "results");
const cached = (id: string) => (existsSync(CACHE()) ? readdirSync(CACHE()).filter((f) => f.includes(id)) : []);

/** OVS ports on br-int tagged with this container ID. */
/** A pod and a libcni driver bound to it, the chained conflist, the port mapping and IPv4-only plugins. */
async function chainPod(name: string): Promise<{ id: string; pod: SimPod; run: (command: "add" | "check" | "del") => ReturnType<typeof runDriver> }> {
  const conf = conflist();
  const id = `ctr-${name}`;
  const pod = await createPod(name);
  const run = (command: "add" | "check" | "del") =>
    runDriver({ node: N, command, conflist: conf, containerID: id, netns: pod, path: PATH, args: args(name, id), capArgs, env: ipv4OnlyEnv() });
  return { id, pod, run };
}

async function portsOf(containerID: string): Promise<string> {
  return N.vsctl("--columns=name", "--bare", "find", "Interface", `external_ids:ovsplane-container-id=${containerID}`);
}

t("ADD, CHECK, DEL of ovsplane + tuning + portmap through libcni with the result cache", async () => {
  const { id, pod, run } = await chainPod("chain");

  const add = await run("add");
  assert.is(add.code, 0, `ADD: ${add.stdout} ${add.stderr}`);
  assert.is(add.json.cniVersion, "1.0.0");
  // The result is ovsplane's, passed through tuning and portmap unchanged.
  const address: string = add.json.ips[0].address;
  assert.ok(address.startsWith("10.244.20."), address);
  const ip = address.split("/")[0]!;
  const hostIf: string = add.json.interfaces.find((i: { sandbox?: string }) => !i.sandbox)?.name;
  assert.ok(hostIf?.startsWith("ovsp"), JSON.stringify(add.json.interfaces));
  assert.equal(await pod.addresses(), [address]);
  assert.ok(await pod.ping("10.244.20.1"), "pod cannot ping its gateway");

  // tuning: the sysctl is set inside the pod's netns.
  assert.is(await sysctlInPod(pod, SYSCTL), "0");
  // ...where the default for new interfaces is 1: the 0 on eth0 is tuning's doing.
  assert.is(await sysctlInPod(pod, "net.ipv4.conf.default.accept_redirects"), "1");

  // portmap: DNAT of hostPort 8080 to the pod's port 80, tagged with this container ID, in the node netns.
  const nat = await natRules();
  assert.match(nat, /^:CNI-HOSTPORT-DNAT /m, nat);
  const dnat = nat.split("\n").filter((l) => l.includes(`--dport ${HOST_PORT}`) && l.includes(`--to-destination ${ip}:${CONTAINER_PORT}`));
  assert.ok(dnat.length >= 1, `no DNAT rule ${HOST_PORT} -> ${ip}:${CONTAINER_PORT} in:\n${nat}`);
  assert.ok(nat.includes(id), `no portmap rule names ${id}:\n${nat}`);
  // Not in the host's (test runner's) netns: the plugins ran in the node.
  const hostNat = (await exec(["iptables-save", "-t", "nat"], { allowFail: true })).stdout;
  assert.not.ok(hostNat.includes(id), "portmap wrote to the test runner's netns");

  // The hostPort works: from the node, TCP to its own gateway address :8080 lands on the pod's :80.
  const listener = await pod.listenTcp(CONTAINER_PORT, { timeoutMs: 15_000 });
  const token = `ovsp-chain-${Date.now()}\n`;
  let connected = false;
  for (let i = 0; i < 3 && !connected; i++) {
    const c = await N.exec(["timeout", "5", "nc", "-N", "-w", "3", "10.244.20.1", String(HOST_PORT)], { input: token, allowFail: true, timeoutMs: 10_000 });
    connected = c.code === 0;
    if (!connected) await sleep(300);
  }
  if (!connected) await pod.exec(["timeout", "2", "nc", "-N", "127.0.0.1", String(CONTAINER_PORT)], { input: "", allowFail: true });
  assert.ok(connected, "node could not connect to hostPort 8080");
  assert.is(await listener.received(), token);

  // libcni cached the result of the chain: what CHECK and DEL get as prevResult.
  assert.equal(cached(id).length, 1, `no cached result for ${id} in ${CACHE()}: ${existsSync(CACHE()) ? readdirSync(CACHE()) : "none"}`);

  // CHECK, with the cached prevResult, passes through all three plugins.
  const chk = await run("check");
  assert.is(chk.code, 0, `CHECK: ${chk.stdout} ${chk.stderr}`);

  // DEL (reverse order: portmap, tuning, ovsplane).
  const del = await run("del");
  assert.is(del.code, 0, `DEL: ${del.stdout} ${del.stderr}`);
  const eth0 = await pod.exec(["ip", "link", "show", "eth0"], { allowFail: true });
  assert.ok(eth0.code !== 0, `eth0 still in the pod: ${eth0.stdout}`);
  assert.is(await portsOf(id), "");
  assert.not.ok((await N.vsctl("list-ports", "br-int")).split("\n").includes(hostIf), `port ${hostIf} still on br-int`);
  assert.ok((await N.exec(["ip", "link", "show", hostIf], { allowFail: true })).code !== 0, `veth ${hostIf} still on the node`);
  assert.equal(await podFlowLines(N), []);
  assert.equal(leases(), []);
  const natAfter = await natRules();
  assert.not.ok(natAfter.includes(id), `portmap rules of ${id} left:\n${natAfter}`);
  assert.not.ok(natAfter.includes(`--dport ${HOST_PORT}`), `DNAT for ${HOST_PORT} left:\n${natAfter}`);
  assert.not.ok(/^:CNI-DN-/m.test(natAfter), `a CNI-DN- chain left:\n${natAfter}`);

  assert.equal(cached(id), [], "libcni kept the cached result after DEL");

  // A repeated DEL still succeeds (cache gone, no prevResult).
  const del2 = await run("del");
  assert.is(del2.code, 0, `second DEL: ${del2.stdout} ${del2.stderr}`);
});

t("CHECK fails when the pod's sysctl, DNAT chain or address no longer match the cached prevResult", async () => {
  const { id, pod, run } = await chainPod("chain2");
  try {
    const add = await run("add");
    assert.is(add.code, 0, `ADD: ${add.stdout} ${add.stderr}`);
    const address: string = add.json.ips[0].address;
    const ok = await run("check");
    assert.is(ok.code, 0, `CHECK before: ${ok.stdout} ${ok.stderr}`);

    // CHECK reaches tuning (2nd): a changed sysctl fails it; restored, CHECK passes again.
    await pod.exec(["sysctl", "-qw", `${SYSCTL}=1`]);
    const badSysctl = await run("check");
    assert.ok(badSysctl.code !== 0, `CHECK passed with ${SYSCTL}=1: ${badSysctl.stderr}`);
    assert.ok(badSysctl.stderr.includes("accept_redirects"), `CHECK error does not name the sysctl: ${badSysctl.stderr}`);
    await pod.exec(["sysctl", "-qw", `${SYSCTL}=0`]);
    const ok2 = await run("check");
    assert.is(ok2.code, 0, `CHECK after restoring the sysctl: ${ok2.stderr}`);

    // CHECK reaches portmap (3rd): the container's DNAT chain emptied fails it.
    const dnChain = (await natRules()).split("\n").find((l) => l.startsWith(":CNI-DN-"))?.slice(1).split(" ")[0];
    assert.ok(dnChain, "no CNI-DN- chain after ADD");
    await N.exec(["iptables", "-t", "nat", "-F", dnChain!]);
    const badNat = await run("check");
    assert.ok(badNat.code !== 0, `CHECK passed with ${dnChain} flushed: ${badNat.stderr}`);
    assert.match(badNat.stderr, /could not check ipv4 dnat/, badNat.stderr);

    // CHECK reaches ovsplane (1st) with prevResult: the pod's address removed fails it.
    await pod.exec(["ip", "addr", "del", address, "dev", "eth0"]);
    const bad = await run("check");
    assert.ok(bad.code !== 0, `CHECK passed without the address ${address}: ${bad.stdout} ${bad.stderr}`);
    // ovsplane (first in the chain) compared the pod with the cached prevResult and named the lost address.
    assert.ok(bad.stderr.includes(address), `CHECK error does not name ${address}: ${bad.stderr}`);
  } finally {
    const del = await run("del");
    assert.is(del.code, 0, `DEL: ${del.stdout} ${del.stderr}`);
  }
  assert.equal(await podFlowLines(N), []);
  assert.equal(leases(), []);
  assert.not.ok((await natRules()).includes(id));
});

t.run();
