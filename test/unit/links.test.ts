// Unit tests of lib/host/links.ts: the subprocess fallback's ip -batch lines; which implementation runs where.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { links, podVethLines } from "../../lib/host/links.ts";

test("podVethLines: exact ip -batch lines (the Node runtime's fallback)", () => {
  const lines = podVethLines(
    {
      ifname: "eth0",
      mac: "0a:58:0a:f4:01:05",
      hostName: "ovsp0123456789a",
      hostMac: "0a:11:22:33:44:55",
      mtu: 1450,
      addresses: ["10.244.1.5/24"],
      routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }, { dst: "10.96.0.0/12", gw: "10.244.1.1", mtu: 1400 }, { dst: "10.244.1.0/24" }],
    },
    "/proc/1/ns/net",
  );
  assert.equal(lines, [
    "link add eth0 address 0a:58:0a:f4:01:05 mtu 1450 type veth peer name ovsp0123456789a address 0a:11:22:33:44:55 mtu 1450 netns /proc/1/ns/net",
    "addr add 10.244.1.5/24 dev eth0",
    "link set eth0 up",
    "route add 0.0.0.0/0 via 10.244.1.1 dev eth0",
    "route add 10.96.0.0/12 via 10.244.1.1 dev eth0 mtu 1400",
    "route add 10.244.1.0/24 dev eth0",
  ]);
});

test("under Node the links are served by ip subprocesses (bun:ffi is never loaded)", async () => {
  assert.is((await links()).kind, "ip");
});

test.run();
