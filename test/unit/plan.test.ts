// Unit tests of attachment planning (addressing, routes, ip commands, node spec) and of derived names.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseConfig } from "../../lib/plugin/config.ts";
import { attachmentId, GATEWAY_PORT, hostVethName, isMac, macFrom, networkId, randomMac, tunnelPortName } from "../../lib/dataplane/names.ts";
import { nodeSpec, podAddressing, podRoutes } from "../../lib/plugin/plan.ts";
import type { Result } from "../../lib/cni/types.ts";
import { fails, net1Config } from "./helpers.ts";

const cfg = net1Config(2);

function ipam(over: Partial<Result> = {}): Result {
  return { cniVersion: "1.1.0", ips: [{ address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 0 }], routes: [{ dst: "0.0.0.0/0" }], ...over };
}

test("podAddressing: one IPv4 address with its gateway", () => {
  const a = podAddressing(ipam());
  assert.equal(a, {
    ips: [{ address: "10.244.1.5/24", gateway: "10.244.1.1" }],
    ipv4: "10.244.1.5",
    gatewayIP: "10.244.1.1",
    gateways: ["10.244.1.1/24"],
    routes: [{ dst: "0.0.0.0/0" }],
  });
});

test("podAddressing: no routes in the IPAM result gives none", () => {
  assert.equal(podAddressing(ipam({ routes: undefined })).routes, []);
});

test("podAddressing: IPv6 is refused with code 7", () => {
  fails(() => podAddressing(ipam({ ips: [{ address: "10.244.1.5/24", gateway: "10.244.1.1" }, { address: "fd00::5/64", gateway: "fd00::1" }] })), 7, "fd00::5/64");
  fails(() => podAddressing(ipam({ ips: [{ address: "fd00::5/64", gateway: "fd00::1" }] })), 7, "IPv6");
});

test("podAddressing: a missing gateway or no address is an error", () => {
  fails(() => podAddressing(ipam({ ips: [{ address: "10.244.1.5/24" }] })), 100, "without a gateway");
  fails(() => podAddressing(ipam({ ips: [] })), 100, "no IPv4 address");
  fails(() => podAddressing(ipam({ ips: undefined })), 100, "no IPv4 address");
});

test("podRoutes: a default route keeps the IPAM routes only, gateway filled in", () => {
  const a = podAddressing(ipam({ routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.244.1.254" }] }));
  assert.equal(podRoutes(a, cfg), [
    { dst: "0.0.0.0/0", gw: "10.244.1.1" },
    { dst: "192.168.0.0/16", gw: "10.244.1.254" },
  ]);
});

test("podRoutes: without a default route each peer's pod range is added once", () => {
  const a = podAddressing(ipam({ routes: [{ dst: "10.244.3.0/24", mtu: 1400 }] }));
  assert.equal(podRoutes(a, cfg), [
    { dst: "10.244.3.0/24", mtu: 1400, gw: "10.244.1.1" },
    { dst: "10.244.2.0/24", gw: "10.244.1.1" },
  ]);
  assert.equal(podRoutes(podAddressing(ipam({ routes: [] })), cfg), [
    { dst: "10.244.2.0/24", gw: "10.244.1.1" },
    { dst: "10.244.3.0/24", gw: "10.244.1.1" },
  ]);
});

test("podRoutes does not change the addressing's routes", () => {
  const a = podAddressing(ipam({ routes: [{ dst: "0.0.0.0/0" }] }));
  podRoutes(a, cfg);
  assert.equal(a.routes, [{ dst: "0.0.0.0/0" }]);
});

test("nodeSpec: bridge, tunnel and gateway port names", () => {
  const n = nodeSpec(cfg, "198.18.0.1");
  assert.equal(n, {
    bridge: "br-int",
    datapathType: "system",
    tunnel: { name: "ovsp-vxlan", localIP: "198.18.0.1", dstPort: 4789 },
    gateway: { name: "ovsplane-gw", mac: macFrom("gw/br-int") },
  });
  assert.is(GATEWAY_PORT, "ovsplane-gw");
  const n2 = nodeSpec(parseConfig({ ...cfg, cniVersion: "1.1.0", type: "ovsplane", bridge: "br-a", tunnel: { dstPort: 8472 }, peers: [], ipam: { type: "host-local" } }), "198.18.0.9");
  assert.is(n2.tunnel.name, "ovsp-vxlan8472");
  assert.is(n2.gateway.mac, macFrom("gw/br-a"));
  assert.is.not(n2.gateway.mac, n.gateway.mac);
});

test("hostVethName: 15 characters, deterministic, per ifname and container", () => {
  const a = hostVethName("c0ffee", "eth0");
  assert.is(a.length, 15);
  assert.match(a, /^ovsp[0-9a-f]{11}$/);
  assert.is(hostVethName("c0ffee", "eth0"), a);
  assert.is.not(hostVethName("c0ffee", "net1"), a);
  assert.is.not(hostVethName("c0ffef", "eth0"), a);
  const long = hostVethName("x".repeat(200), "eth0");
  assert.is(long.length, 15);
});

test("macFrom: locally administered unicast, deterministic", () => {
  for (const seed of ["a", "gw/br-int", "host/c1/eth0", ""]) {
    const m = macFrom(seed);
    assert.ok(isMac(m), m);
    const first = parseInt(m.slice(0, 2), 16);
    assert.is(first, 0x0a);
    assert.is(first & 1, 0, "unicast");
    assert.is(first & 2, 2, "locally administered");
    assert.is(macFrom(seed), m);
  }
  assert.is.not(macFrom("a"), macFrom("b"));
  const r = randomMac();
  assert.ok(isMac(r) && r.startsWith("0a:"), r);
});

test("isMac", () => {
  assert.ok(isMac("0A:58:0a:f4:01:05"));
  assert.not.ok(isMac("0a:58:0a:f4:01"));
  assert.not.ok(isMac("0a-58-0a-f4-01-05"));
  assert.not.ok(isMac(undefined));
});

test("tunnelPortName: default port has no suffix, others do, within 15 characters", () => {
  assert.is(tunnelPortName(4789), "ovsp-vxlan");
  assert.is(tunnelPortName(8472), "ovsp-vxlan8472");
  assert.is(tunnelPortName(65535), "ovsp-vxlan65535");
  for (const p of [1, 80, 4789, 65535]) assert.ok(tunnelPortName(p).length <= 15);
});

test("attachmentId is 40-bit and per attachment; networkId is 8-bit", () => {
  const id = attachmentId("net1", "c1", "eth0");
  assert.ok(id >= 0n && id < 1n << 40n);
  assert.is(attachmentId("net1", "c1", "eth0"), id);
  assert.is.not(attachmentId("net1", "c1", "eth1"), id);
  assert.is.not(attachmentId("net2", "c1", "eth0"), id);
  const n = networkId("net1");
  assert.ok(n >= 0n && n < 256n);
});

test.run();
