// ovsplane-ipam versus Debian's host-local, as executables over the CNI protocol: shared dirs, concurrency, errors, versions.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../../lib/host/exec.ts";
import { SUPPORTED_VERSIONS } from "../../lib/cni/version.ts";
import { REPO_ROOT as ROOT, type PluginResult as Out } from "../harness/plugin.ts";

const HOST_LOCAL = "/usr/lib/cni/host-local";
const NODE_BUNDLE = join(ROOT, "dist/js/ovsplane-ipam.cjs");
const BIN = join(ROOT, "dist/bin/ovsplane-ipam");

/** argv of our plugin: the Bun binary when it answers VERSION, else the node bundle (OVSPLANE_IPAM_CMD overrides). */
async function ourArgv(): Promise<string[]> {
  if (process.env.OVSPLANE_IPAM_CMD) return process.env.OVSPLANE_IPAM_CMD.split(" ");
  if (existsSync(BIN)) {
    const r = await run([BIN], { env: { CNI_COMMAND: "VERSION" }, allowFail: true }).catch(() => undefined);
    if (r && r.code === 0 && /supportedVersions/.test(r.stdout)) return [BIN];
  }
  if (!existsSync(NODE_BUNDLE)) await run(["make", "-C", ROOT, "bundles"], { timeoutMs: 120_000 });
  return ["node", NODE_BUNDLE];
}

const ctx = { dir: "", ours: [] as string[] };

/** Runs a plugin with a CNI command; config on stdin. */
async function cni(argv: string[], command: string, conf: unknown, o: { id?: string; ifname?: string; args?: string; env?: Record<string, string | undefined> } = {}): Promise<Out> {
  const r = await run(argv, {
    input: typeof conf === "string" ? conf : JSON.stringify(conf),
    allowFail: true,
    timeoutMs: 60_000,
    env: {
      CNI_COMMAND: command, CNI_CONTAINERID: o.id ?? "c1", CNI_NETNS: "/var/run/netns/fake", CNI_IFNAME: o.ifname ?? "eth0",
      CNI_PATH: "/usr/lib/cni", CNI_ARGS: o.args ?? "", OVSPLANE_DEBUG: undefined, ...o.env,
    },
  });
  let json: any;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { ...r, json };
}
const ours = (command: string, conf: unknown, o: Parameters<typeof cni>[3] = {}) => cni(ctx.ours, command, conf, o);
const hl = (command: string, conf: unknown, o: Parameters<typeof cni>[3] = {}) => cni([HOST_LOCAL], command, conf, o);

function conf(ipam: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: "1.0.0", name: "net1", type: "bridge", ipam: { type: "host-local", dataDir: ctx.dir, ...ipam }, ...extra };
}
const DUAL = { ranges: [[{ subnet: "10.1.0.0/24" }], [{ subnet: "fd00:0:0:1::/64" }]] };
const V4 = { ranges: [[{ subnet: "10.2.0.0/24" }]] };
const netDir = () => join(ctx.dir, "net1");
const leases = () => (existsSync(netDir()) ? readdirSync(netDir()).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip.")).sort() : []);
const lastReserved = (i: number) => readFileSync(join(netDir(), `last_reserved_ip.${i}`), "utf8");
const addrs = (o: Out): string[] => {
  assert.is(o.code, 0, `exit ${o.code}: ${o.stdout} ${o.stderr}`);
  return (o.json.ips as { address: string }[]).map((i) => i.address);
};

const T = suite("ipam-hostlocal");
T.before(async () => {
  assert.ok(existsSync(HOST_LOCAL), `${HOST_LOCAL} missing: apt-get install containernetworking-plugins`);
  ctx.ours = await ourArgv();
});
T.before.each(() => {
  ctx.dir = mkdtempSync(join(tmpdir(), "ipam-int-"));
});
T.after.each(() => {
  rmSync(ctx.dir, { recursive: true, force: true });
});

T("host-local and ovsplane-ipam continue each other's directory", async () => {
  assert.equal(addrs(await hl("ADD", conf(DUAL), { id: "a" })), ["10.1.0.2/24", "fd00:0:0:1::2/64"]);
  assert.equal(addrs(await ours("ADD", conf(DUAL), { id: "b" })), ["10.1.0.3/24", "fd00:0:0:1::3/64"]);
  assert.equal(addrs(await hl("ADD", conf(DUAL), { id: "c" })), ["10.1.0.4/24", "fd00:0:0:1::4/64"]);
  assert.equal(lastReserved(0), "10.1.0.4");
  assert.equal(addrs(await ours("ADD", conf(DUAL), { id: "d" })), ["10.1.0.5/24", "fd00:0:0:1::5/64"]);
  assert.equal(lastReserved(1), "fd00:0:0:1::5");
  // Byte-identical lease files from both writers.
  assert.equal(readFileSync(join(netDir(), "10.1.0.2")), Buffer.from("a\r\neth0"));
  assert.equal(readFileSync(join(netDir(), "fd00:0:0:1::3")), Buffer.from("b\r\neth0"));
  // Each skips the other's leases when the cursor points before them.
  writeFileSync(join(netDir(), "last_reserved_ip.0"), "10.1.0.1");
  writeFileSync(join(netDir(), "last_reserved_ip.1"), "fd00:0:0:1::1");
  assert.equal(addrs(await hl("ADD", conf(DUAL), { id: "e" })), ["10.1.0.6/24", "fd00:0:0:1::6/64"]);
  writeFileSync(join(netDir(), "last_reserved_ip.0"), "10.1.0.1");
  writeFileSync(join(netDir(), "last_reserved_ip.1"), "fd00:0:0:1::1");
  assert.equal(addrs(await ours("ADD", conf(DUAL), { id: "f" })), ["10.1.0.7/24", "fd00:0:0:1::7/64"]);
  // Each checks and releases the other's leases.
  assert.is((await hl("CHECK", conf(DUAL), { id: "b" })).code, 0);
  assert.is((await ours("CHECK", conf(DUAL), { id: "a" })).code, 0);
  assert.is((await ours("DEL", conf(DUAL), { id: "a" })).code, 0);
  assert.is((await hl("DEL", conf(DUAL), { id: "b" })).code, 0);
  assert.equal(leases(), ["10.1.0.4", "10.1.0.5", "10.1.0.6", "10.1.0.7", "fd00:0:0:1::4", "fd00:0:0:1::5", "fd00:0:0:1::6", "fd00:0:0:1::7"]);
  // Ours reuses a lease host-local wrote for the same attachment (host-local itself would refuse).
  assert.equal(addrs(await ours("ADD", conf(DUAL), { id: "c" })), ["10.1.0.4/24", "fd00:0:0:1::4/64"]);
  for (const id of ["c", "d", "e", "f"]) assert.is((await (id < "e" ? hl : ours)("DEL", conf(DUAL), { id })).code, 0);
  assert.equal(leases(), []);
});

T("a config naming ovsplane-ipam needs no CNI_PATH; one naming another IPAM does (code 4)", async () => {
  const v4 = { ranges: [[{ subnet: "10.1.0.0/24" }]] };
  const r = await ours("ADD", conf({ ...v4, type: "ovsplane-ipam" }), { id: "a", env: { CNI_PATH: undefined } });
  assert.is(r.code, 0, r.stdout);
  assert.equal(addrs(r), ["10.1.0.2/24"]);
  const other = await ours("ADD", conf(v4), { id: "b", env: { CNI_PATH: undefined } });
  assert.is(other.json?.code, 4, other.stdout);
  assert.match(other.json.msg, /CNI_PATH/);
});

T("ovsplane-ipam releases old host-local's container-ID-only leases", async () => {
  assert.is((await ours("ADD", conf(V4), { id: "x" })).code, 0);
  writeFileSync(join(netDir(), "10.2.0.77"), "legacy");
  assert.is((await ours("DEL", conf(V4), { id: "legacy" })).code, 0);
  assert.equal(leases(), ["10.2.0.2"]);
});

T("50 concurrent ADDs of ours on one dir: 50 distinct addresses, then DEL leaves no lease", async () => {
  const ids = Array.from({ length: 50 }, (_, i) => `p${i}`);
  const outs = await Promise.all(ids.map((id) => ours("ADD", conf(V4), { id })));
  const got = outs.map((o) => addrs(o)[0]!);
  assert.is(new Set(got).size, 50, got.join(" "));
  assert.is(leases().length, 50);
  ids.forEach((id, i) => assert.equal(readFileSync(join(netDir(), got[i]!.split("/")[0]!), "utf8"), `${id}\r\neth0`));
  const dels = await Promise.all(ids.map((id) => ours("DEL", conf(V4), { id })));
  assert.ok(dels.every((d) => d.code === 0 && d.stdout === ""));
  assert.equal(leases(), []);
});

T("ours and host-local interleaved concurrently never hand out one address twice", async () => {
  const ids = Array.from({ length: 50 }, (_, i) => `m${i}`);
  const outs = await Promise.all(ids.map((id, i) => (i % 2 ? hl : ours)("ADD", conf(V4), { id })));
  const got = outs.map((o) => addrs(o)[0]!.split("/")[0]!);
  assert.is(new Set(got).size, ids.length, got.join(" "));
  assert.equal(leases().sort(), [...got].sort());
  ids.forEach((id, i) => assert.equal(readFileSync(join(netDir(), got[i]!), "utf8"), `${id}\r\neth0`));
  const dels = await Promise.all(ids.map((id, i) => (i % 2 ? ours : hl)("DEL", conf(V4), { id })));
  assert.ok(dels.every((d) => d.code === 0));
  assert.equal(leases(), []);
});

T("bad input: one JSON error on stdout, right code, non-zero exit, no stack trace", async () => {
  const small = { ranges: [[{ subnet: "10.9.0.0/30" }]] };
  assert.is((await ours("ADD", conf(small), { id: "first" })).code, 0);
  const cases: Array<[Promise<Out>, number, RegExp]> = [
    [ours("ADD", "{not json"), 6, /cannot decode/],
    [ours("ADD", conf({ ranges: [[{ subnet: "10.0.0.0/33" }]] })), 7, /^invalid config: ipam.ranges\[0\]\[0\].subnet "10.0.0.0\/33": prefix too long$/],
    [ours("ADD", conf({ subnet: "10.0.0.0/31" })), 7, /too small/],
    [ours("ADD", conf(V4), { args: "IP=10.99.0.1" }), 7, /CNI_ARGS IP "10.99.0.1": requested IP is in no range set/],
    [ours("ADD", conf(V4), { args: "FOO=1" }), 4, /unknown key/],
    [ours("ADD", conf(V4), { env: { CNI_CONTAINERID: undefined } }), 4, /CNI_CONTAINERID/],
    [ours("ADD", conf(V4), { id: "../../etc" }), 4, /CNI_CONTAINERID/],
    [ours("ADD", { ...conf(V4), name: "../x" }), 7, /name/],
    [ours("ADD", conf(V4, { cniVersion: "9.9.9" })), 1, /incompatible CNI version/],
    [ours("ADD", conf(small), { id: "second" }), 103, /no IP addresses available in range set 0: 10.9.0.0\/30/],
    [ours("STATUS", conf(small, { cniVersion: "1.1.0" }), { id: "" }), 50, /no free address left/],
    [ours("CHECK", conf(V4), { id: "nobody" }), 102, /check failed/],
    [ours("GC", conf(V4, { cniVersion: "1.1.0" }), { id: "" }), 7, /valid-attachments/],
  ];
  for (const [p, code, msg] of cases) {
    const o = await p;
    assert.is.not(o.code, 0, o.stdout);
    assert.is(o.stdout.trim().split("\n").length, 1, o.stdout);
    assert.ok(o.json, `stdout is JSON: ${o.stdout}`);
    assert.is(o.json.code, code, o.stdout);
    assert.match(o.json.msg, msg);
    assert.not.match(o.stdout + o.stderr, /\n\s+at \S+ \(|\.ts:\d+:\d+/, "no stack trace");
  }
  assert.equal(readdirSync(ctx.dir), ["net1"], "nothing outside the network dir");
});

T("ADD output of every spec version; identical to host-local where it speaks the version", async () => {
  const ipam = { ...DUAL, routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0", gw: "fd00:0:0:1::1" }] };
  for (const v of SUPPORTED_VERSIONS) {
    const mine = await ours("ADD", conf({ ...ipam, dataDir: join(ctx.dir, `o${v}`) }, { cniVersion: v }));
    assert.is(mine.code, 0, mine.stdout);
    assert.is(mine.json.cniVersion, v);
    if (v < "0.3.0") {
      assert.equal(mine.json, {
        cniVersion: v, dns: {},
        ip4: { ip: "10.1.0.2/24", gateway: "10.1.0.1", routes: [{ dst: "0.0.0.0/0" }] },
        ip6: { ip: "fd00:0:0:1::2/64", gateway: "fd00:0:0:1::1", routes: [{ dst: "::/0", gw: "fd00:0:0:1::1" }] },
      });
    } else {
      const versioned = v < "1.0.0";
      assert.equal(mine.json.ips, [
        { ...(versioned ? { version: "4" } : {}), address: "10.1.0.2/24", gateway: "10.1.0.1" },
        { ...(versioned ? { version: "6" } : {}), address: "fd00:0:0:1::2/64", gateway: "fd00:0:0:1::1" },
      ]);
      assert.equal(mine.json.routes, ipam.routes);
    }
    if (v === "1.1.0") continue; // Debian's host-local 1.1.1 stops at 1.0.0
    const ref = await hl("ADD", conf({ ...ipam, dataDir: join(ctx.dir, `h${v}`) }, { cniVersion: v }));
    assert.is(ref.code, 0, ref.stdout);
    assert.equal(mine.json, ref.json, `cniVersion ${v}`);
  }
});

T("GC through the executable removes host-local's stale leases and keeps valid ones", async () => {
  for (const id of ["keep", "stale1", "stale2"]) assert.is((await hl("ADD", conf(V4), { id })).code, 0);
  const gc = await ours("GC", conf(V4, { cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }] }), { id: "" });
  assert.is(gc.code, 0, gc.stdout);
  assert.equal(leases(), ["10.2.0.2"]);
  assert.is((await ours("STATUS", conf(V4, { cniVersion: "1.1.0" }), { id: "" })).code, 0);
});

T.run();
