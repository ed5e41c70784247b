// Unit tests of the ovsplane-ipam configuration parser: defaults, validation messages, requested IPs, resolv.conf.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { CniError } from "../../lib/cni/errors.ts";
import { DEFAULT_DATA_DIR, parseIpamConfig, parseResolvConf, type IpamConfig } from "../../lib/ipam/config.ts";
import type { NetConf } from "../../lib/cni/types.ts";
import { caught, ipamConf as conf } from "./helpers.ts";

function refused(c: NetConf, args: Record<string, string> = {}): CniError {
  return caught(() => parseIpamConfig(c, args), `a refusal of ${JSON.stringify(c.ipam)}`);
}

function pool(cfg: IpamConfig, set = 0, i = 0): string[] {
  const p = cfg.rangeSets[set]![i]!;
  return [`${p.subnet.network}/${p.subnet.prefix}`, String(p.rangeStart), String(p.rangeEnd), String(p.gateway)];
}

test("IPv4 defaults: gateway .1, range .1-.254, default dataDir", () => {
  const c = parseIpamConfig(conf({ ranges: [[{ subnet: "10.1.0.0/24" }]] }));
  assert.equal(pool(c), ["10.1.0.0/24", "10.1.0.1", "10.1.0.254", "10.1.0.1"]);
  assert.is(c.dataDir, DEFAULT_DATA_DIR);
  assert.is(c.network, "net1");
  assert.equal(c.routes, []);
  assert.equal(c.requested, []);
});

test("IPv6 defaults end at the last address; /30 and /126 are the smallest", () => {
  assert.equal(pool(parseIpamConfig(conf({ ranges: [[{ subnet: "fd00:0:0:1::/64" }]] }))), [
    "fd00:0:0:1::/64", "fd00:0:0:1::1", "fd00::1:ffff:ffff:ffff:ffff", "fd00:0:0:1::1",
  ]);
  assert.equal(pool(parseIpamConfig(conf({ subnet: "10.0.0.4/30" }))), ["10.0.0.4/30", "10.0.0.5", "10.0.0.6", "10.0.0.5"]);
  assert.equal(pool(parseIpamConfig(conf({ subnet: "fd00::/126" }))), ["fd00::/126", "fd00::1", "fd00::3", "fd00::1"]);
});

test("legacy top-level subnet is one set with one pool, placed before ranges", () => {
  const c = parseIpamConfig(conf({ subnet: "10.2.0.0/16", rangeStart: "10.2.1.10", rangeEnd: "10.2.1.20", gateway: "10.2.0.254", ranges: [[{ subnet: "fd00::/64" }]] }));
  assert.is(c.rangeSets.length, 2);
  assert.equal(pool(c), ["10.2.0.0/16", "10.2.1.10", "10.2.1.20", "10.2.0.254"]);
  assert.is(c.rangeSets[1]![0]!.subnet.family, 6);
});

test("dual stack, several pools, routes, dataDir, resolvConf", () => {
  const c = parseIpamConfig(conf({
    dataDir: "/tmp/x",
    resolvConf: "/etc/resolv.conf",
    ranges: [[{ subnet: "10.1.0.0/24", rangeEnd: "10.1.0.99" }, { subnet: "10.1.0.0/24", rangeStart: "10.1.0.100" }], [{ subnet: "fd00::/64" }]],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "fd00:0::/8", gw: "FD00::1" }],
  }));
  assert.is(c.rangeSets[0]!.length, 2);
  assert.is(c.dataDir, "/tmp/x");
  assert.is(c.resolvConf, "/etc/resolv.conf");
  assert.equal(c.routes, [{ dst: "0.0.0.0/0" }, { dst: "fd00::/8", gw: "fd00::1" }]);
});

test("every refusal is code 7 naming field path and value", () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ ranges: [[{ subnet: "10.0.0.0/33" }]] }, 'invalid config: ipam.ranges[0][0].subnet "10.0.0.0/33": prefix too long'],
    [{ ranges: [[{ subnet: "10.0.0.0/31" }]] }, 'invalid config: ipam.ranges[0][0].subnet "10.0.0.0/31": network /31 too small to allocate from'],
    [{ subnet: "10.0.0.0/32" }, 'invalid config: ipam.subnet "10.0.0.0/32": network /32 too small to allocate from'],
    [{ subnet: "fd00::/127" }, 'invalid config: ipam.subnet "fd00::/127": network /127 too small to allocate from'],
    [{ subnet: "fd00::/128" }, 'invalid config: ipam.subnet "fd00::/128": network /128 too small to allocate from'],
    [{ subnet: "10.0.0.5/24" }, 'invalid config: ipam.subnet "10.0.0.5/24": host bits set; the network address is 10.0.0.0/24'],
    [{ subnet: "10.0.0/24" }, 'invalid config: ipam.subnet "10.0.0/24": not an IP address'],
    [{ subnet: 7 }, "invalid config: ipam.subnet 7: must be a CIDR string (address/prefix)"],
    [{ ranges: [[{ subnet: "10.0.0.0/24", rangeStart: "10.0.1.1" }]] }, 'invalid config: ipam.ranges[0][0].rangeStart "10.0.1.1": not in subnet 10.0.0.0/24'],
    [{ ranges: [[{ subnet: "10.0.0.0/24", rangeEnd: "10.0.0.256" }]] }, 'invalid config: ipam.ranges[0][0].rangeEnd "10.0.0.256": not an IP address'],
    [{ ranges: [[{ subnet: "10.0.0.0/24", gateway: "10.9.0.1" }]] }, 'invalid config: ipam.ranges[0][0].gateway "10.9.0.1": not in subnet 10.0.0.0/24'],
    [{ ranges: [[{ subnet: "10.0.0.0/24", rangeStart: "10.0.0.50", rangeEnd: "10.0.0.40" }]] }, 'invalid config: ipam.ranges[0][0].rangeEnd "10.0.0.40": before rangeStart 10.0.0.50'],
    [{ ranges: [[{ rangeStart: "10.0.0.5" }]] }, "invalid config: ipam.ranges[0][0].subnet: required"],
    [{ ranges: [[]] }, "invalid config: ipam.ranges[0] []: empty range set"],
    [{ ranges: {} }, "invalid config: ipam.ranges {}: must be a list of range sets (each a list of ranges)"],
    [{}, "invalid config: ipam.ranges: no IP ranges specified (set ipam.ranges or ipam.subnet)"],
    [{ rangeStart: "10.0.0.5", ranges: [[{ subnet: "10.0.0.0/24" }]] }, 'invalid config: ipam.rangeStart "10.0.0.5": only valid together with ipam.subnet'],
    [{ ranges: [[{ subnet: "10.0.0.0/24" }, { subnet: "fd00::/64" }]] }, 'invalid config: ipam.ranges[0][1].subnet "fd00::/64": mixes IPv6 into an IPv4 range set'],
    [{ ranges: [[{ subnet: "10.0.0.0/24" }, { subnet: "10.0.0.0/25" }]] }, 'invalid config: ipam.ranges[0][1] "10.0.0.0/25 10.0.0.1-10.0.0.126": overlaps ipam.ranges[0][0] (10.0.0.0/24 10.0.0.1-10.0.0.254)'],
    [{ ranges: [[{ subnet: "10.0.0.0/16" }], [{ subnet: "10.0.3.0/24" }]] }, 'invalid config: ipam.ranges[1][0] "10.0.3.0/24 10.0.3.1-10.0.3.254": overlaps ipam.ranges[0][0] (10.0.0.0/16 10.0.0.1-10.0.255.254) of another range set'],
    [{ subnet: "::/64" }, 'invalid config: ipam.subnet "::/64": contains IPv4-mapped addresses (::ffff:0:0/96)'],
    [{ subnet: "10.0.0.0/24", dataDir: "" }, 'invalid config: ipam.dataDir "": must be a non-empty path'],
    [{ subnet: "10.0.0.0/24", routes: [{ dst: "0.0.0.0" }] }, 'invalid config: ipam.routes[0].dst "0.0.0.0": not a CIDR (address/prefix)'],
    [{ subnet: "10.0.0.0/24", routes: [{ dst: "0.0.0.0/0", gw: "fd00::1" }] }, 'invalid config: ipam.routes[0].gw "fd00::1": not the family of dst 0.0.0.0/0'],
    [{ subnet: "10.0.0.0/24", resolvConf: 3 }, "invalid config: ipam.resolvConf 3: must be a file path"],
  ];
  for (const [ipam, msg] of cases) {
    const e = refused(conf(ipam));
    assert.is(e.code, 7, msg);
    assert.is(e.message, msg);
  }
  assert.is(refused({ cniVersion: "1.0.0", name: "n", type: "x" }).message, "invalid config: ipam: must be an object");
});

test("pools in one subnet with disjoint ranges are fine (as in host-local)", () => {
  const c = parseIpamConfig(conf({ ranges: [[{ subnet: "10.0.0.0/24", rangeEnd: "10.0.0.9" }, { subnet: "10.0.0.0/24", rangeStart: "10.0.0.10" }]] }));
  assert.is(c.rangeSets[0]!.length, 2);
});

test("cniVersion below 0.3.0 allows one range set per family", () => {
  const ipam = { ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "10.1.0.0/24" }]] };
  assert.match(refused(conf(ipam, { cniVersion: "0.2.0" })).message, /cniVersion 0.2.0 allows only one IPv4 range set/);
  assert.is(parseIpamConfig(conf({ ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "fd00::/64" }]] }, { cniVersion: "0.2.0" })).rangeSets.length, 2);
});

test("requested IPs from CNI_ARGS, args.cni.ips and runtimeConfig.ips, one per set", () => {
  const ipam = { ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "fd00::/64" }]] };
  const c = parseIpamConfig(conf(ipam, { args: { cni: { ips: ["fd00::0:9"] } } }), { IP: "10.0.0.7" });
  assert.equal(c.requested.map((r) => [String(r.ip), r.setIndex, r.field]), [["10.0.0.7", 0, "CNI_ARGS IP"], ["fd00::9", 1, "args.cni.ips[0]"]]);
  const d = parseIpamConfig(conf(ipam, { runtimeConfig: { ips: ["10.0.0.8/24", "fd00::8/64"] } }));
  assert.equal(d.requested.map((r) => String(r.ip)), ["10.0.0.8", "fd00::8"]);
  assert.equal(parseIpamConfig(conf(ipam), { IP: "10.0.0.7,fd00::7" }).requested.map((r) => r.setIndex), [0, 1]);
  assert.is(parseIpamConfig(conf(ipam, { runtimeConfig: { ips: ["10.0.0.7"] } }), { IP: "10.0.0.7" }).requested.length, 1);
});

test("bad requested IPs are refused before anything happens", () => {
  const ipam = { ranges: [[{ subnet: "10.0.0.0/24", rangeStart: "10.0.0.10" }]] };
  let e = refused(conf(ipam), { IP: "10.0.0.7,10.0.0.8" });
  assert.is(e.message, 'invalid config: CNI_ARGS IP "10.0.0.7": requested IP is in no range set (0: 10.0.0.0/24 10.0.0.10-10.0.0.254)');
  e = refused(conf(ipam), { IP: "10.0.0.17,10.0.0.18" });
  assert.match(e.message, /CNI_ARGS IP "10.0.0.18": range set 0 already has requested IP 10.0.0.17 \(CNI_ARGS IP\); at most one per range set/);
  e = refused(conf(ipam), { IP: "banana" });
  assert.is(e.code, 4);
  assert.match(e.message, /CNI_ARGS.*"banana": not an IP address/);
  e = refused(conf(ipam, { runtimeConfig: { ips: ["10.9.0.1/24"] } }));
  assert.match(e.message, /^invalid config: runtimeConfig.ips\[0\] "10.9.0.1\/24": requested IP is in no range set/);
  e = refused(conf({ ranges: [[{ subnet: "10.0.0.0/24", gateway: "10.0.0.20" }]] }), { IP: "10.0.0.20" });
  assert.match(e.message, /requested IP is the gateway of ipam.ranges\[0\]\[0\]/);
  e = refused(conf(ipam, { args: { cni: { ips: "10.0.0.20" } } }));
  assert.is(e.message, 'invalid config: args.cni.ips "10.0.0.20": must be a list of IP addresses');
});

test("runtimeConfig.ipRanges come first", () => {
  const c = parseIpamConfig(conf({ ranges: [[{ subnet: "10.0.0.0/24" }]] }, { runtimeConfig: { ipRanges: [[{ subnet: "10.5.0.0/24" }]] } }));
  assert.equal(c.rangeSets.map((s) => s[0]!.field), ["runtimeConfig.ipRanges[0][0]", "ipam.ranges[0][0]"]);
});

test("resolv.conf parsing like host-local", () => {
  const text = "# comment\n; other\nnameserver 10.96.0.10\nnameserver fd00::10\r\nsearch a.svc b.svc\nsearch c\noptions ndots:5 edns0\ndomain example.org\nbogus\n\n";
  assert.equal(parseResolvConf(text), {
    nameservers: ["10.96.0.10", "fd00::10"], search: ["a.svc", "b.svc", "c"], options: ["ndots:5", "edns0"], domain: "example.org",
  });
  assert.equal(parseResolvConf(""), {});
});

test.run();
