// Unit tests of lib/ip.ts: parsing, Go-compatible text, containment, overlap and arithmetic.
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  canonicalIp, cidrContains, cidrLast, cidrsOverlap, cidrSize, cidrToString, compareIps, firstUsable, ipFamily,
  IpAddress, IpParseError, isIp, lastUsable, nextIp, parseCidr, parseIp, parseV4Range, prevIp, tryParseIp, v4Text,
} from "../../lib/net/ip.ts";

test("IPv4 and IPv6 parse to family and value", () => {
  assert.equal([parseIp("10.0.0.1").family, parseIp("10.0.0.1").value], [4, 0x0a000001n]);
  assert.is(parseIp("fd00::1").family, 6);
  assert.is(parseIp("fd00::1").value, (0xfd00n << 112n) | 1n);
  assert.is(ipFamily("fd00::/8"), 6);
  assert.is(ipFamily("1.2.3.4"), 4);
});

test("IPv6 text is Go's net.IP.String()", () => {
  const cases: Array<[string, string]> = [
    ["FD00::0001", "fd00::1"],
    ["fd00:0:0:1:0:0:0:fffe", "fd00:0:0:1::fffe"],
    ["fd00:0:1:2:3:4:5:6", "fd00:0:1:2:3:4:5:6"], // one zero group is not elided
    ["fd00:0:0:1:0:0:1:0", "fd00::1:0:0:1:0"], // first of equal runs
    ["1:0:0:1:0:0:0:1", "1:0:0:1::1"], // longest run
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["::ffff:10.1.2.3", "10.1.2.3"], // IPv4-mapped is IPv4, as in Go
  ];
  for (const [input, want] of cases) assert.is(canonicalIp(input), want, input);
});

test("bad addresses are refused with a reason", () => {
  for (const bad of ["", "abc", "010.0.0.1", "1.2.3", "1.2.3.4.5", "256.1.1.1", "fd00::00001", "fe80::1%eth0", ":::1", "1::2::3", "10.0.0.1/24", " 10.0.0.1"]) {
    assert.throws(() => parseIp(bad), (e: unknown) => e instanceof IpParseError && /not an IP address/.test((e as Error).message), bad);
    assert.is(tryParseIp(bad), undefined);
    assert.not.ok(isIp(bad));
  }
});

test("CIDRs parse with address, network, prefix and family", () => {
  const c = parseCidr("10.0.0.5/24");
  assert.equal([c.address, c.network, c.prefix, c.family], ["10.0.0.5", "10.0.0.0", 24, 4]);
  assert.is(cidrToString(c), "10.0.0.5/24");
  assert.is(cidrToString(c, { masked: true }), "10.0.0.0/24");
  const v6 = parseCidr("FD00:0::5/64");
  assert.equal([v6.address, v6.network, v6.prefix, v6.family], ["fd00::5", "fd00::", 64, 6]);
});

test("bad CIDRs say why", () => {
  const why = (s: string) => {
    try {
      parseCidr(s);
      return "accepted";
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.is(why("10.0.0.0/33"), "prefix too long");
  assert.is(why("fd00::/129"), "prefix too long");
  assert.is(why("10.0.0.0"), "not a CIDR (address/prefix)");
  assert.is(why("10.0.0.0/-1"), "not a CIDR (address/prefix)");
  assert.is(why("10.0.0.0/24/1"), "not a CIDR (address/prefix)");
  assert.match(why("10.0.0.300/24"), /not an IP address/);
  assert.match(why("::ffff:10.0.0.0/104"), /IPv4-mapped/);
});

test("contains and overlap", () => {
  assert.ok(cidrContains("10.0.0.0/24", "10.0.0.255"));
  assert.not.ok(cidrContains("10.0.0.0/24", "10.0.1.0"));
  assert.not.ok(cidrContains("10.0.0.0/24", "fd00::1"));
  assert.ok(cidrContains("fd00::/64", "fd00::ffff"));
  assert.ok(cidrContains("0.0.0.0/0", "255.255.255.255"));
  assert.ok(cidrsOverlap("10.0.0.0/8", "10.1.0.0/16"));
  assert.ok(cidrsOverlap("10.1.0.0/16", "10.0.0.0/8"));
  assert.not.ok(cidrsOverlap("10.0.0.0/24", "10.0.1.0/24"));
  assert.not.ok(cidrsOverlap("10.0.0.0/8", "fd00::/8"));
  assert.ok(cidrsOverlap("fd00::/64", "fd00::8/126"));
});

test("first/last usable, size, last", () => {
  assert.is(String(firstUsable("10.0.0.0/24")), "10.0.0.1");
  assert.is(String(lastUsable("10.0.0.0/24")), "10.0.0.254");
  assert.is(String(cidrLast("10.0.0.0/24")), "10.0.0.255");
  assert.is(String(lastUsable("fd00::/64")), "fd00::ffff:ffff:ffff:ffff");
  assert.is(String(firstUsable("10.0.0.4/31")), "10.0.0.4");
  assert.is(String(lastUsable("10.0.0.4/31")), "10.0.0.5");
  assert.is(String(lastUsable("10.0.0.4/32")), "10.0.0.4");
  assert.is(cidrSize("10.0.0.0/24"), 256n);
  assert.is(cidrSize("fd00::/64"), 1n << 64n);
});

test("next, prev and compare", () => {
  assert.is(String(nextIp("10.0.0.255")), "10.0.1.0");
  assert.is(String(prevIp("10.0.1.0")), "10.0.0.255");
  assert.is(nextIp("255.255.255.255"), null);
  assert.is(prevIp("::"), null);
  assert.is(String(nextIp("fd00::ffff")), "fd00::1:0");
  assert.ok(compareIps("10.0.0.2", "10.0.0.10") < 0);
  assert.ok(compareIps("fd00::1", "10.0.0.1") > 0);
  assert.is(compareIps("fd00::1", "FD00:0::1"), 0);
  assert.ok(new IpAddress(4, 1n).equals(parseIp("0.0.0.1")));
  assert.is(JSON.stringify({ a: parseIp("fd00::1") }), '{"a":"fd00::1"}');
});

test("parseV4Range: an IPv4 CIDR as numbers, the network of the address; anything else is undefined", () => {
  assert.equal(parseV4Range("10.1.2.7/24"), { first: 0x0a010200, last: 0x0a0102ff, prefix: 24 });
  assert.equal(parseV4Range("255.255.255.255/32"), { first: 0xffffffff, last: 0xffffffff, prefix: 32 });
  assert.equal(parseV4Range("10.0.0.0/0"), { first: 0, last: 0xffffffff, prefix: 0 });
  for (const bad of ["10.1.2.0/33", "10.1.2.0", "010.1.2.0/24", "fd00::/64", "10.1.2.256/24", " 10.1.2.0/24"]) assert.is(parseV4Range(bad), undefined, bad);
  for (const s of ["10.244.3.0/24", "172.16.0.0/12", "0.0.0.0/0"]) {
    const r = parseV4Range(s)!;
    assert.is(`${v4Text(r.first)}/${r.prefix}`, cidrToString(parseCidr(s), { masked: true }));
    assert.is(BigInt(r.last), cidrLast(s).value);
  }
});

test.run();
