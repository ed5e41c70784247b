// Unit tests of ovsplane-ipam against a temp data dir: allocation order, leases on disk, DEL, GC, CHECK, STATUS.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ipamPlugin } from "../../lib/ipam/plugin.ts";
import { candidates, setCapacity } from "../../lib/ipam/allocator.ts";
import { parseIpamConfig } from "../../lib/ipam/config.ts";
import { parseIp } from "../../lib/net/ip.ts";
import type { CniRequest, NetConf, Result } from "../../lib/cni/types.ts";
import { cniRequest, ipamConf, rejection as fails } from "./helpers.ts";

const ctx = { dir: "" };
const T = suite("ipam-alloc");
T.before.each(() => {
  ctx.dir = mkdtempSync(join(tmpdir(), "ipam-unit-"));
});
T.after.each(() => {
  rmSync(ctx.dir, { recursive: true, force: true });
});

function conf(ipam: Record<string, unknown>, extra: Partial<NetConf> = {}): NetConf {
  return ipamConf({ dataDir: ctx.dir, ...ipam }, extra);
}
const V4 = { ranges: [[{ subnet: "10.0.0.0/24" }]] };

function req(command: CniRequest["command"], c: NetConf, o: { id?: string; ifname?: string; args?: Record<string, string>; prevResult?: Result } = {}): CniRequest {
  const r = cniRequest(command, c, { containerID: o.id ?? "c1", ifname: o.ifname ?? "eth0", args: o.args ?? {} });
  if (o.prevResult) r.prevResult = o.prevResult;
  return r;
}
const netDir = () => join(ctx.dir, "net1");
const leaseFiles = () => readdirSync(netDir()).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip.")).sort();
async function add(c: NetConf, o: Parameters<typeof req>[2] = {}): Promise<string[]> {
  return ((await ipamPlugin.add(req("ADD", c, o))).ips ?? []).map((i) => i.address);
}

T("first ADD: .2 (gateway .1 skipped), result shape, files byte-exact, modes", async () => {
  const r = await ipamPlugin.add(req("ADD", conf({ ...V4, routes: [{ dst: "0.0.0.0/0" }] }), { id: "abc" }));
  assert.equal(r, { cniVersion: "1.1.0", ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1" }], routes: [{ dst: "0.0.0.0/0" }], dns: {} });
  assert.equal(readFileSync(join(netDir(), "10.0.0.2")), Buffer.from("abc\r\neth0"));
  assert.equal(readFileSync(join(netDir(), "last_reserved_ip.0")), Buffer.from("10.0.0.2"));
  assert.is(statSync(join(netDir(), "10.0.0.2")).mode & 0o777, 0o600);
  assert.is(statSync(netDir()).mode & 0o777, 0o755);
  assert.is(statSync(join(netDir(), "lock")).size, 0);
  assert.equal(readdirSync(netDir()).sort(), ["10.0.0.2", "last_reserved_ip.0", "lock"]);
});

T("round robin continues after last_reserved_ip, not in freed holes", async () => {
  assert.equal(await add(conf(V4), { id: "a" }), ["10.0.0.2/24"]);
  assert.equal(await add(conf(V4), { id: "b" }), ["10.0.0.3/24"]);
  assert.equal(await add(conf(V4), { id: "c" }), ["10.0.0.4/24"]);
  await ipamPlugin.del(req("DEL", conf(V4), { id: "b" }));
  assert.equal(await add(conf(V4), { id: "d" }), ["10.0.0.5/24"]);
  writeFileSync(join(netDir(), "last_reserved_ip.0"), "10.0.0.254");
  assert.equal(await add(conf(V4), { id: "e" }), ["10.0.0.3/24"], "wraps to the start, skips .1 and taken .2");
  writeFileSync(join(netDir(), "last_reserved_ip.0"), "192.168.9.9");
  assert.equal(await add(conf(V4), { id: "f" }), ["10.0.0.6/24"], "outside the set: from the start");
});

T("iterator order over several pools matches host-local", () => {
  const c = parseIpamConfig(conf({ ranges: [[{ subnet: "10.0.0.0/24", rangeStart: "10.0.0.1", rangeEnd: "10.0.0.3" }, { subnet: "10.0.1.0/24", rangeStart: "10.0.1.10", rangeEnd: "10.0.1.11" }]] }));
  const set = c.rangeSets[0]!;
  assert.equal([...candidates(set)].map((x) => String(x.ip)), ["10.0.0.2", "10.0.0.3", "10.0.1.10", "10.0.1.11"]);
  assert.equal([...candidates(set, parseIp("10.0.0.3"))].map((x) => String(x.ip)), ["10.0.1.10", "10.0.1.11", "10.0.0.2", "10.0.0.3"]);
  assert.equal([...candidates(set, parseIp("10.0.1.11"))].map((x) => String(x.ip)), ["10.0.0.2", "10.0.0.3", "10.0.1.10", "10.0.1.11"]);
  assert.is(setCapacity(set), 4n);
});

T("exhaustion is code 103 naming the range; a failed ADD keeps nothing it created", async () => {
  const small = { ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "10.9.0.0/30" }]] };
  assert.equal(await add(conf(small), { id: "a" }), ["10.0.0.2/24", "10.9.0.2/30"]);
  const e = await fails(ipamPlugin.add(req("ADD", conf(small), { id: "b" })));
  assert.is(e.code, 103);
  assert.is(e.message, "no IP addresses available in range set 1: 10.9.0.0/30 10.9.0.1-10.9.0.2");
  assert.equal(leaseFiles(), ["10.0.0.2", "10.9.0.2"], "b's 10.0.0.3 was released again");
});

T("ADD is idempotent per (containerID, ifname); another ifname gets its own", async () => {
  assert.equal(await add(conf(V4), { id: "a" }), ["10.0.0.2/24"]);
  assert.equal(await add(conf(V4), { id: "a" }), ["10.0.0.2/24"]);
  assert.equal(await add(conf(V4), { id: "a", ifname: "net1" }), ["10.0.0.3/24"]);
  assert.equal(leaseFiles(), ["10.0.0.2", "10.0.0.3"]);
});

T("requested IPs: granted, taken by someone else, conflicting with an existing lease", async () => {
  assert.equal(await add(conf(V4), { id: "a", args: { IP: "10.0.0.50" } }), ["10.0.0.50/24"]);
  assert.equal(readFileSync(join(netDir(), "last_reserved_ip.0"), "utf8"), "10.0.0.50");
  let e = await fails(ipamPlugin.add(req("ADD", conf(V4, { runtimeConfig: { ips: ["10.0.0.50/24"] } }), { id: "b" })));
  assert.is(e.code, 101);
  assert.match(e.message, /requested IP address 10.0.0.50 \(runtimeConfig.ips\[0\]\) is not available in range set 0 \(held by a\/eth0\)/);
  e = await fails(ipamPlugin.add(req("ADD", conf(V4), { id: "a", args: { IP: "10.0.0.60" } })));
  assert.is(e.code, 101);
  assert.equal(await add(conf(V4), { id: "a", args: { IP: "10.0.0.50" } }), ["10.0.0.50/24"]);
  assert.equal(await add(conf(V4, { args: { cni: { ips: ["10.0.0.51"] } } }), { id: "c" }), ["10.0.0.51/24"]);
  assert.equal(leaseFiles(), ["10.0.0.50", "10.0.0.51"]);
});

T("IPv6 and dual stack: canonical file names, gateways, routes, dns from resolvConf", async () => {
  const rc = join(ctx.dir, "resolv.conf");
  writeFileSync(rc, "nameserver 10.96.0.10\nsearch svc.cluster.local\noptions ndots:5\n");
  const ipam = { ranges: [[{ subnet: "10.1.0.0/24" }], [{ subnet: "fd00:0:0:1::/64", rangeStart: "fd00:0:0:1::fffe" }]], resolvConf: rc };
  const r = await ipamPlugin.add(req("ADD", conf(ipam), { id: "a" }));
  assert.equal(r.ips, [{ address: "10.1.0.2/24", gateway: "10.1.0.1" }, { address: "fd00:0:0:1::fffe/64", gateway: "fd00:0:0:1::1" }]);
  assert.equal(r.dns, { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"], options: ["ndots:5"] });
  await add(conf(ipam), { id: "b" });
  assert.equal(await add(conf(ipam), { id: "c" }), ["10.1.0.4/24", "fd00::1:0:0:1:0/64"]);
  assert.equal(leaseFiles(), ["10.1.0.2", "10.1.0.3", "10.1.0.4", "fd00:0:0:1::fffe", "fd00:0:0:1::ffff", "fd00::1:0:0:1:0"]);
  assert.equal(readFileSync(join(netDir(), "last_reserved_ip.1"), "utf8"), "fd00::1:0:0:1:0");
});

T("50 concurrent in-process ADDs get 50 distinct addresses", async () => {
  const ips = await Promise.all(Array.from({ length: 50 }, (_, i) => add(conf(V4), { id: `c${i}` })));
  assert.is(new Set(ips.map((x) => x[0])).size, 50);
  assert.is(leaseFiles().length, 50);
  await Promise.all(Array.from({ length: 50 }, (_, i) => ipamPlugin.del(req("DEL", conf(V4), { id: `c${i}` }))));
  assert.equal(leaseFiles(), []);
});

T("DEL removes only this attachment's leases (and old container-ID-only files); repeats and missing dirs are fine", async () => {
  await add(conf(V4), { id: "a" });
  await add(conf(V4), { id: "a", ifname: "net1" });
  await add(conf(V4), { id: "b" });
  await ipamPlugin.del(req("DEL", conf(V4), { id: "a" }));
  assert.equal(leaseFiles(), ["10.0.0.3", "10.0.0.4"]);
  await ipamPlugin.del(req("DEL", conf(V4), { id: "a" }));
  writeFileSync(join(netDir(), "10.0.0.9"), "old");
  writeFileSync(join(netDir(), "10.0.0.10"), "b\r\neth0\n");
  await ipamPlugin.del(req("DEL", conf(V4), { id: "old" }));
  await ipamPlugin.del(req("DEL", conf(V4), { id: "b" }));
  assert.equal(leaseFiles(), ["10.0.0.3"]);
  await ipamPlugin.del(req("DEL", { ...conf(V4), name: "never-used" }, { id: "a" }));
  assert.not.ok(existsSync(join(ctx.dir, "never-used")));
  await ipamPlugin.del(req("DEL", conf({ subnet: "bogus" }), { id: "a", ifname: "net1" }));
  assert.equal(leaseFiles(), [], "DEL works even when the ranges no longer parse");
});

T("GC keeps valid attachments, removes the rest, leaves bookkeeping alone", async () => {
  for (const [id, ifname] of [["a", "eth0"], ["b", "eth0"], ["c", "net1"]] as const) await add(conf(V4), { id, ifname });
  writeFileSync(join(netDir(), "10.0.0.20"), "d");
  writeFileSync(join(netDir(), "10.0.0.21"), "e");
  writeFileSync(join(netDir(), "10.0.0.22"), "");
  writeFileSync(join(netDir(), "10.0.0.23"), "");
  utimesSync(join(netDir(), "10.0.0.23"), new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
  writeFileSync(join(netDir(), "notes.txt"), "x");
  const valid = [{ containerID: "a", ifname: "eth0" }, { containerID: "d", ifname: "eth9" }, { containerID: "c", ifname: "eth0" }];
  await ipamPlugin.gc(req("GC", conf(V4, { "cni.dev/valid-attachments": valid }), { id: "" }));
  assert.equal(readdirSync(netDir()).sort(), ["10.0.0.2", "10.0.0.20", "10.0.0.22", "last_reserved_ip.0", "lock", "notes.txt"]);
  const e = await fails(ipamPlugin.gc(req("GC", conf(V4), { id: "" })));
  assert.is(e.code, 7);
  assert.match(e.message, /cni.dev\/valid-attachments: required/);
});

T("CHECK: passes with the lease, 102 without or when prevResult differs", async () => {
  const ipam = { ranges: [[{ subnet: "10.1.0.0/24" }], [{ subnet: "fd00::/64" }]] };
  const prev = await ipamPlugin.add(req("ADD", conf(ipam), { id: "a" }));
  await ipamPlugin.check(req("CHECK", conf(ipam), { id: "a", prevResult: prev }));
  let e = await fails(ipamPlugin.check(req("CHECK", conf(ipam), { id: "b" })));
  assert.is(e.code, 102);
  e = await fails(ipamPlugin.check(req("CHECK", conf(ipam), { id: "a", prevResult: { cniVersion: "1.1.0", ips: [{ address: "10.1.0.9/24" }] } })));
  assert.is(e.code, 102);
  assert.match(e.message, /10.1.0.9\/24 is not leased/);
  e = await fails(ipamPlugin.check(req("CHECK", conf(ipam), { id: "a", prevResult: { cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/16" }] } })));
  assert.match(e.message, /prefix differs/);
  await ipamPlugin.del(req("DEL", conf(ipam), { id: "a" }));
  e = await fails(ipamPlugin.check(req("CHECK", conf(ipam), { id: "a", prevResult: prev })));
  assert.is(e.code, 102);
});

T("STATUS: OK with free addresses, 50 naming the range when full", async () => {
  const small = { ranges: [[{ subnet: "10.9.0.0/30" }]] };
  await ipamPlugin.status(req("STATUS", conf(small), { id: "" }));
  await add(conf(small), { id: "a" });
  const e = await fails(ipamPlugin.status(req("STATUS", conf(small), { id: "" })));
  assert.is(e.code, 50);
  assert.match(e.message, /range set 0 \(10.9.0.0\/30 10.9.0.1-10.9.0.2\) has no free address left \(1 of 1 leased\)/);
  await ipamPlugin.del(req("DEL", conf(small), { id: "a" }));
  await ipamPlugin.status(req("STATUS", conf(small), { id: "" }));
});

T("hostile names are refused before the disk changes", async () => {
  const e1 = await fails(ipamPlugin.add(req("ADD", { ...conf(V4), name: ".." })));
  assert.is(e1.code, 7);
  const e2 = await fails(ipamPlugin.add(req("ADD", { ...conf(V4), name: "a/../../b" })));
  assert.is(e2.code, 7);
  const e3 = await fails(ipamPlugin.add(req("ADD", conf(V4), { id: "../../etc" })));
  assert.is(e3.code, 4);
  const e4 = await fails(ipamPlugin.add(req("ADD", conf(V4), { ifname: "eth0\r\nx" })));
  assert.is(e4.code, 4);
  await fails(ipamPlugin.del(req("DEL", conf(V4), { id: "a/b" })));
  assert.equal(readdirSync(ctx.dir), []);
});

T.run();
