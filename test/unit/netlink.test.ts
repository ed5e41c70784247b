// Unit tests of lib/host/netlink: our requests are byte for byte what iproute2 sends (captured with strace), kernel answers decode.
import { readFileSync } from "node:fs";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { routeLines, staleRouteLines, type HostSpec } from "../../lib/dataplane/hoststate.ts";
import { parseBatchLine } from "../../lib/host/netlink/batch.ts";
import { absorb, attr, decodeMessages, encodeAttrs, NLMSG, type NlMessage, parseAttrs, type Reply } from "../../lib/host/netlink/codec.ts";
import {
  delAddr, delLink, delRoute, dumpAddrs, dumpLinks, dumpRoutes, getLink, newAddr, newRoute, newVeth, parseAddr, parseLink, parseRoute, RTM, setLink,
} from "../../lib/host/netlink/rtnl.ts";

/** Captured by scripts/capture-netlink.ts: per command, each netlink send and receive of `ip`. */
const fixtures = JSON.parse(readFileSync(new URL("fixtures/netlink.json", import.meta.url), "utf8")) as Record<string, { io: { dir: "send" | "recv"; hex: string }[] }>;

const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex, "hex"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** The last request of `type` that ip sent for a fixture, as sent (trimmed to its length), and where it is in the capture. */
function sent(name: string, type: number): { raw: Uint8Array; msg: NlMessage; at: number } {
  const io = fixtures[name]!.io;
  for (let at = io.length - 1; at >= 0; at--) {
    if (io[at]!.dir !== "send") continue;
    const raw = bytes(io[at]!.hex);
    const msg = decodeMessages(raw)[0]!;
    if (msg.type === type) return { raw: raw.subarray(0, new DataView(raw.buffer).getUint32(0, true)), msg, at };
  }
  throw new Error(`${name}: no request of type ${type}`);
}

/** Every message the kernel answered in a fixture. */
const answers = (name: string) => fixtures[name]!.io.filter((i) => i.dir === "recv").flatMap((i) => decodeMessages(bytes(i.hex)));
/** The ifindex a captured ifinfomsg / ifaddrmsg names (ifaddrmsg: offset 4 too). */
const indexOf = (m: NlMessage) => new DataView(m.payload.buffer, m.payload.byteOffset + 4, 4).getInt32(0, true);
/** The u32 attribute `type` of a captured rtmsg (route requests name the device by RTA_OIF). */
const rtAttr = (m: NlMessage, type: number) => new DataView(parseAttrs(m.payload, 12).get(type)!.buffer, parseAttrs(m.payload, 12).get(type)!.byteOffset, 4).getUint32(0, true);

function same(name: string, type: number, build: (seq: number, msg: NlMessage) => Uint8Array) {
  const { raw, msg } = sent(name, type);
  assert.is(hex(build(msg.seq, msg)), hex(raw), name);
}

test("attributes: padding outside rta_len, nested lengths include the children's padding", () => {
  const enc = encodeAttrs([attr.strz(3, "eth0"), attr.nested(18, [attr.str(1, "veth")])]);
  assert.is(hex(enc), "09000300657468300000000" + "0" + "0c001200080001007665746" + "8");
  const back = parseAttrs(enc);
  assert.is(Buffer.from(back.get(3)!).toString(), "eth0\0");
  assert.is(hex(back.get(18)!), "0800010076657468");
});

test("veth with its peer created in another netns: RTM_NEWLINK as `ip link add … type veth peer … netns`", () => {
  same("vethCreate", RTM.NEWLINK, (seq) =>
    newVeth(seq, { name: "nlh0", mac: "02:00:00:00:00:01", mtu: 1450, peer: { name: "eth0", mac: "02:00:00:00:00:02", mtu: 1450 }, peerNetnsFd: 4 }));
});

test("link changes: alias, up (RTM_NEWLINK by index, as `ip link set`), delete", () => {
  same("setAlias", RTM.NEWLINK, (seq, m) => setLink(seq, { index: indexOf(m) }, { alias: "ovsplane/podnet/c1/eth0" }));
  same("hostUp", RTM.NEWLINK, (seq, m) => setLink(seq, { index: indexOf(m) }, { up: true }));
  same("podUp", RTM.NEWLINK, (seq, m) => setLink(seq, { index: indexOf(m) }, { up: true }));
  same("linkDel", RTM.DELLINK, (seq, m) => delLink(seq, { index: indexOf(m) }));
  same("linkDel", RTM.GETLINK, (seq) => getLink(seq, "nlh0"));
});

test("by name: IFLA_IFNAME with index 0; MTU and rename attributes", () => {
  const m = decodeMessages(setLink(7, { name: "eth0" }, { up: true, mtu: 1400, rename: "eth1" }))[0]!;
  assert.is(m.seq, 7);
  assert.is(indexOf(m), 0);
  const a = parseAttrs(m.payload, 16);
  assert.is(Buffer.from(a.get(3)!).toString(), "eth1\0"); // the rename is the last IFLA_IFNAME: the kernel reads the first
  assert.is(new DataView(a.get(4)!.buffer, a.get(4)!.byteOffset).getUint32(0, true), 1400);
  assert.is(hex(delLink(1, { name: "eth0" }).subarray(16 + 16)), "0900030065746830" + "00000000");
});

test("addresses: add, replace, delete", () => {
  same("addrAdd", RTM.NEWADDR, (seq, m) => newAddr(seq, { index: indexOf(m), address: "10.244.1.5/24" }));
  same("gwAddrReplace", RTM.NEWADDR, (seq, m) => newAddr(seq, { index: indexOf(m), address: "10.244.1.1/24", replace: true }));
  same("gwAddrDel", RTM.DELADDR, (seq, m) => delAddr(seq, { index: indexOf(m), address: "10.244.1.1/24" }));
});

test("routes: default via gateway, with MTU, replace with src/proto/metric, delete", () => {
  same("routeDefault", RTM.NEWROUTE, (seq, m) => newRoute(seq, { dst: "0.0.0.0/0", gateway: "10.244.1.1", oif: rtAttr(m, 4) }));
  same("routeMtu", RTM.NEWROUTE, (seq, m) => newRoute(seq, { dst: "10.244.2.0/24", gateway: "10.244.1.1", oif: rtAttr(m, 4), mtu: 1400 }));
  same("gwRouteReplace", RTM.NEWROUTE, (seq, m) =>
    newRoute(seq, { dst: "10.244.2.0/24", oif: rtAttr(m, 4), prefsrc: "10.244.1.1", protocol: 111, metric: 1001, replace: true }));
  same("gwRouteDel", RTM.DELROUTE, (seq, m) => delRoute(seq, { dst: "10.244.2.0/24", oif: rtAttr(m, 4), protocol: 111, metric: 1001 }));
  const onlink = decodeMessages(newRoute(1, { dst: "0.0.0.0/0", gateway: "169.254.1.1", oif: 2, onlink: true }))[0]!;
  assert.is(onlink.payload[8], 4, "RTNH_F_ONLINK in rtm_flags");
});

test("dump requests: links of a kind, one link's addresses, routes by device or protocol", () => {
  same("vethList", RTM.GETLINK, (seq) => dumpLinks(seq, "veth"));
  same("addrShow", RTM.GETADDR, (seq, m) => dumpAddrs(seq, indexOf(m)));
  same("routeShow", RTM.GETROUTE, (seq, m) => dumpRoutes(seq, { oif: rtAttr(m, 4) }));
  same("gwRouteShow", RTM.GETROUTE, (seq) => dumpRoutes(seq, { protocol: 111 }));
});

/** The reply to the last request of `type` in a fixture (the receives after it; ip reuses a seq), as absorb() collects it. */
function replyTo(name: string, type: number): Reply {
  const { msg, at } = sent(name, type);
  const reply: Reply = { items: [], done: false, errno: 0 };
  for (const io of fixtures[name]!.io.slice(at)) if (io.dir === "recv") absorb(reply, decodeMessages(bytes(io.hex)), msg.seq);
  return reply;
}

test("kernel answers: acks, ENODEV, a multi-part dump ending in NLMSG_DONE", () => {
  assert.equal(replyTo("vethCreate", RTM.NEWLINK), { items: [], done: true, errno: 0 });
  const missing = replyTo("linkDelMissing", RTM.GETLINK);
  assert.is(missing.errno, 19, "ENODEV");
  assert.ok(missing.done);
  assert.ok(answers("vethList").some((m) => m.type === NLMSG.DONE));
  const dump = replyTo("vethList", RTM.GETLINK);
  assert.ok(dump.done);
  assert.ok(dump.items.length >= 2, "both veths of the scratch host netns");
});

test("decoded links, addresses and routes", () => {
  const links = replyTo("vethList", RTM.GETLINK).items.map(parseLink);
  const h = links.find((l) => l.name === "nlh0");
  assert.ok(h);
  assert.equal({ kind: h.kind, mtu: h.mtu, mac: h.mac, alias: h.alias, up: (h.flags & 1) === 1 }, { kind: "veth", mtu: 1450, mac: "02:00:00:00:00:01", alias: "ovsplane/podnet/c1/eth0", up: true });
  const one = replyTo("addrShow", RTM.GETLINK).items.map(parseLink)[0]!;
  assert.equal([one.name, one.mac, one.mtu], ["eth0", "02:00:00:00:00:02", 1450]);
  const addrs = replyTo("addrShow", RTM.GETADDR).items.map(parseAddr);
  assert.ok(addrs.some((a) => a.local === "10.244.1.5" && a.prefixlen === 24 && a.index === one.index));
  const routes = replyTo("routeShow", RTM.GETROUTE).items.map(parseRoute);
  assert.ok(routes.some((r) => r?.dst === "0.0.0.0/0" && r.gateway === "10.244.1.1" && r.oif === one.index));
  assert.ok(routes.some((r) => r?.dst === "10.244.2.0/24" && r.gateway === "10.244.1.1"));
  // ip resolved the device between the dump's parts with the same seq: keep the routes only.
  const gw = replyTo("gwRouteShow", RTM.GETROUTE).items.filter((m) => m.type === RTM.NEWROUTE).map(parseRoute);
  assert.equal(gw, [{ dst: "10.244.2.0/24", table: 254, protocol: 111, scope: 253, type: 1, oif: gw[0]!.oif, metric: 1001, prefsrc: "10.244.1.1" }]);
});

test("host state lines (hoststate.ts) read as netlink operations; anything else is refused", () => {
  const spec: HostSpec = {
    network: "podnet", netId: 1n, gateways: ["10.244.1.1/24"], gatewayIP: "10.244.1.1", podCIDRs: ["10.244.1.0/24"],
    peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }], clusterRanges: [], masquerade: false,
  };
  const lines = [...staleRouteLines([{ dst: "10.244.9.0/24", dev: "ovsplane-gw", metric: 1001 }, { dst: "10.9.9.9", metric: 1001 }], 1n, []), ...routeLines(spec), "addr del 10.244.1.1/24 dev ovsplane-gw"];
  assert.equal(lines.map(parseBatchLine), [
    { op: "route", action: "del", dst: "10.244.9.0/24", dev: "ovsplane-gw", protocol: 111, metric: 1001 },
    { op: "route", action: "del", dst: "10.9.9.9/32", dev: "ovsplane-gw", protocol: 111, metric: 1001 },
    { op: "addr", action: "replace", address: "10.244.1.1/24", dev: "ovsplane-gw" },
    { op: "link-up", dev: "ovsplane-gw" },
    { op: "route", action: "replace", dst: "10.244.1.0/24", dev: "ovsplane-gw", src: "10.244.1.1", protocol: 111, metric: 1001 },
    { op: "route", action: "replace", dst: "10.244.2.0/24", dev: "ovsplane-gw", src: "10.244.1.1", protocol: 111, metric: 1001 },
    { op: "addr", action: "del", address: "10.244.1.1/24", dev: "ovsplane-gw" },
  ]);
  for (const bad of ["route add 10.0.0.0/8 via 10.0.0.1 dev x", "link set x down", "addr replace 10.0.0.1/24 dev x label y", "route replace 10.0.0.0/8 dev"]) {
    assert.throws(() => parseBatchLine(bad), /not understood/, bad);
  }
});

test.run();
