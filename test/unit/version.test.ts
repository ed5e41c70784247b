// Unit tests of spec version handling and result conversion.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { convertResult, parseResult, compareVersions } from "../../lib/cni/version.ts";
import type { Result } from "../../lib/cni/types.ts";

const r: Result = {
  cniVersion: "1.1.0",
  interfaces: [{ name: "ovsp1", mac: "aa:bb:cc:dd:ee:01" }, { name: "eth0", mac: "aa:bb:cc:dd:ee:02", mtu: 1450, sandbox: "/var/run/netns/p" }],
  ips: [{ address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 1 }, { address: "fd00::5/64", gateway: "fd00::1", interface: 1 }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1", mtu: 1400 }, { dst: "::/0" }],
  dns: { nameservers: ["10.96.0.10"] },
};

test("compareVersions orders dotted versions", () => {
  assert.ok(compareVersions("0.3.1", "0.4.0") < 0);
  assert.is(compareVersions("1.1.0", "1.1.0"), 0);
  assert.ok(compareVersions("1.0.0", "0.4.0") > 0);
});

test("1.x results pass through with the requested version", () => {
  assert.equal(convertResult(r, "1.0.0"), { ...r, cniVersion: "1.0.0" });
});

test("0.4.0 and 0.3.x gain ips[].version and lose interface mtu", () => {
  const o = convertResult(r, "0.4.0") as any;
  assert.is(o.cniVersion, "0.4.0");
  assert.equal(o.ips[0], { version: "4", address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 1 });
  assert.is(o.ips[1].version, "6");
  assert.equal(o.interfaces[1], { name: "eth0", mac: "aa:bb:cc:dd:ee:02", sandbox: "/var/run/netns/p" });
  assert.equal(o.routes[0], { dst: "0.0.0.0/0", gw: "10.244.1.1" });
});

test("0.2.0 has ip4/ip6 with the first address of each family", () => {
  const o = convertResult(r, "0.2.0") as any;
  assert.equal(o, {
    cniVersion: "0.2.0",
    ip4: { ip: "10.244.1.5/24", gateway: "10.244.1.1", routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }] },
    ip6: { ip: "fd00::5/64", gateway: "fd00::1", routes: [{ dst: "::/0" }] },
    dns: { nameservers: ["10.96.0.10"] },
  });
});

test("parseResult reads every version back into the 1.x shape", () => {
  for (const v of ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
    const back = parseResult(convertResult(r, v));
    assert.is(back.ips![0]!.address, "10.244.1.5/24", v);
    assert.is(back.ips![0]!.gateway, "10.244.1.1", v);
    assert.not.ok((back.ips![0] as any).version, v);
  }
});

test.run();
