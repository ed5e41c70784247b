// Unit tests of the native OpenFlow 1.4 encoder and bundle client: bytes equal ovs-ofctl's, vocabulary, a fake switch.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CniError } from "../../lib/cni/errors.ts";
import {
  applyFlowsNative, bundleAdd, bundleControl, BundleCtrl, describeError, encodeFlowMod, helloMessage, ofMessage, OFPT,
} from "../../lib/ovs/openflow.ts";
import { encodeInstructions, encodeMatch } from "../../lib/ovs/oxm.ts";
import { EXACT_MASK, type Flow, type FlowOp } from "../../lib/dataplane/pipeline.ts";
import { reconcileFlowOps } from "../../lib/plugin/plan.ts";
import { net1Config, NET1_NODE, NET1_POD } from "./helpers.ts";

// The golden reconcile bundle of flows.test.ts (test/unit/golden/flows-reconcile.txt), as the flow mods
// `ovs-ofctl -O OpenFlow14 bundle` 3.1 sent for it (captured through a logging proxy; xid set to 0).
const OFCTL_FLOW_MODS = [
  "050e0038000000006f76016c00000000ffffffffffffffffff03000000008000ffffffffffffffffffffffff000000000001000400000000",
  "050e0048000000006f76016c000000000000000000000000000000000000012cffffffffffffffffffffffff0000000000010018800000040000000180004c080000000000000000",
  "050e0068000000006f76016c00000000000000000000000000000000000000c8ffffffffffffffffffffffff000000000001000c8000000400000002000000000004002000000000ffff0018000023200007001f0001000400000000000000000001000819000000",
  "050e0038000000006f76016c0000000000000000000000000000000000000000ffffffffffffffffffffffff000000000001000400000000",
  "050e0038000000006f76016c0000000000000000000000000a00000000000000ffffffffffffffffffffffff000000000001000400000000",
  "050e00e8000000006f76016c000000000000000000000000140000000000012cffffffffffffffffffffffff000000000001001880000a02080680002a02000180002e040af40101000400a000000000ffff0018000023200006003000000000000004060000020600190010800008060a580af4010100000019001080002a020002000000000000ffff0018000023200006003000000000000122060001240600190010800030060a580af401010000ffff001800002320000600200000000000002004000022040019001080002c040af401010000000000000010fffffff80000000000000000",
  "050e0060000000006f76016c000000000000000000000000140000000000012cffffffffffffffffffffffff000000000001001880000a02080680002a02000280002e040af40101000400180000000000000010000000020000000000000000",
  "050e0048000000006f76016c0000000000000000000000001400000000000064ffffffffffffffffffffffff000000000001000a80000a020800000000000000000100081e000000",
  "050e0038000000006f76016c0000000000000000000000001400000000000000ffffffffffffffffffffffff000000000001000400000000",
  "050e0040000000006f76016c0000000000000000000000001900000000000000ffffffffffffffffffffffff000000000001000400000000000100081e000000",
  "050e0040000000006f76016c0000000000000000000000001e00000000000096ffffffffffffffffffffffff000000000001000c800000040000000100000000",
  "050e0058000000006f76016c0000000000000000000000001e00000000000032ffffffffffffffffffffffff000000000001000a80000a020800000000000000000400180000000000000010000000020000000000000000",
  "050e0038000000006f76016c0000000000000000000000001e00000000000000ffffffffffffffffffffffff000000000001000400000000",
  "050e0060000000006f76016c00000000000000000000000028000000000000c8ffffffffffffffffffffffff000000000001000c0001000400000000000000000004002000000000ffff001800002320000f001f00010404ffff000000000000",
  "050e0038000000006f76016c0000000000000000000000002800000000000000ffffffffffffffffffffffff000000000001000400000000",
  "050e0038000000006f76036c00000000ffffffff00000000ff03000000008000ffffffffffffffffffffffff000000000001000400000000",
  "050e0070000000006f76036cc6120002000000000000000000000000000000c8ffffffffffffffffffffffff0000000000010014800000040000000100013e04c6120002000000000004002000000000ffff00180000232000060018000000000001200800010004000100081e000000",
  "050e0088000000006f76036cc612000200000000000000001e00000000000064ffffffffffffffffffffffff000000000001001680000a020800800019080af40200ffffff0000000004004000000000ffff001800002320000600180000000000010004000120080019001000014004c61200020000000000000010000000010000000000000000",
  "050e0068000000006f76026c00000064000000000000000028000000000000c8ffffffffffffffffffffffff000000000001001400010004000000640001020400000064000000000004002000000000ffff001800002320000f001f00010404ffff000000000000",
  "050e0068000000006f76040000001234000000000000000000000000000000c8ffffffffffffffffffffffff000000000001000c8000000400000005000000000004002000000000ffff0018000023200007001f000100040000000000000064000100080a000000",
  "050e0060000000006f7604000000123400000000000000000a000000000000c8ffffffffffffffffffffffff00000000000100248000000400000005800008060a580af4010580000a020800800016040af40105000000000001000814000000",
  "050e0068000000006f7604000000123400000000000000000a000000000000c8ffffffffffffffffffffffff000000000001002e8000000400000005800008060a580af4010580000a02080680002c040af40105800030060a580af4010500000001000814000000",
  "050e00f0000000006f760400000012340000000000000000140000000000012cffffffffffffffffffffffff000000000001002080000a02080680002a02000180002e040af401050001000400000064000400a000000000ffff0018000023200006003000000000000004060000020600190010800008060a580af4010500000019001080002a020002000000000000ffff0018000023200006003000000000000122060001240600190010800030060a580af401050000ffff001800002320000600200000000000002004000022040019001080002c040af401050000000000000010fffffff80000000000000000",
  "050e0060000000006f76040000001234000000000000000019000000000000c8ffffffffffffffffffffffff000000000001001280000a02080680002e040af40105000000000000000400180000000000000010000000050000000000000000",
  "050e00a8000000006f7604000000123400000000000000001e000000000000c8ffffffffffffffffffffffff000000000001001280000a020800800018040af40105000000000000000400580000000000190010800008060a580af40101000000190010800006060a580af401050000ffff0018000023200007001f000102040000000000000064ffff0018000023200007001f0001040400000000000000050001000828000000",
];

const cfg = net1Config(1);
const node = NET1_NODE;
const pod = NET1_POD;
const OPS = reconcileFlowOps({ cfg, node, ofports: { tunnel: 1, gateway: 2 }, gatewayIP: "10.244.1.1", pod });

const flow = (match: string[], actions: string[], table = 3): FlowOp => ({ op: "add", flow: { table, priority: 7, cookie: 0xabn, match, actions } });
const hexOf = (b: Buffer) => b.toString("hex");
/** The OXM fields of a match (after its 4-byte header), as hex. */
const fields = (match: string[]) => {
  const m = encodeMatch(match);
  return hexOf(m.subarray(4, m.readUInt16BE(2)));
};
/** The actions inside APPLY_ACTIONS, as hex. */
const applied = (actions: string[]) => {
  const i = encodeInstructions(actions);
  assert.is(i.readUInt16BE(0), 4, "APPLY_ACTIONS first");
  return hexOf(i.subarray(8, i.readUInt16BE(2)));
};

test("every op of the golden reconcile bundle encodes byte for byte as ovs-ofctl's", () => {
  assert.is(OPS.length, OFCTL_FLOW_MODS.length);
  OPS.forEach((op, i) => assert.is(hexOf(encodeFlowMod(op, 0)), OFCTL_FLOW_MODS[i], `op ${i}`));
});

test("flow_mod layout: header, fixed part, match padded, lengths multiple of 8", () => {
  for (const op of OPS) {
    const m = encodeFlowMod(op, 0x01020304);
    assert.is(m[0], 5, "OpenFlow 1.4");
    assert.is(m[1], OFPT.FlowMod);
    assert.is(m.readUInt16BE(2), m.length);
    assert.is(m.readUInt32BE(4), 0x01020304);
    assert.is(m.length % 8, 0);
    assert.is(m.readUInt16BE(48), 1, "OFPMT_OXM");
    const mlen = m.readUInt16BE(50);
    const padded = mlen + ((8 - (mlen % 8)) % 8);
    assert.ok(m.subarray(48 + mlen, 48 + padded).every((x) => x === 0), "match padding is zero");
    for (let off = 48 + padded; off < m.length; off += m.readUInt16BE(off + 2)) assert.is(m.readUInt16BE(off + 2) % 8, 0, "instruction length");
  }
  const del = encodeFlowMod({ op: "delete", cookie: 0x6f76040000001234n, mask: EXACT_MASK }, 0);
  assert.is(hexOf(del.subarray(8, 48)), "6f76040000001234ffffffffffffffffff03000000008000ffffffffffffffffffffffff00000000");
  assert.is(del.length, 56, "empty match, no instruction");
});

test("match fields: OXM/NXM headers and values, ethertype first, masks", () => {
  assert.is(fields(["in_port=5"]), "8000000400000005");
  assert.is(fields(["ip"]), "80000a020800");
  assert.is(fields(["arp", "arp_op=1"]), "80000a02080680002a020001");
  assert.is(fields(["arp_tpa=10.244.1.1", "arp"]), "80000a020806" + "80002e040af40101", "ethertype before ARP fields");
  assert.is(fields(["arp", "arp_spa=10.244.1.5"]), "80000a020806" + "80002c040af40105");
  assert.is(fields(["arp", "arp_sha=0a:58:0a:f4:01:05"]), "80000a020806" + "800030060a580af40105");
  assert.is(fields(["dl_src=0a:58:0a:f4:01:05"]), "800008060a580af40105");
  assert.is(fields(["ip", "nw_src=10.244.1.5"]), "80000a020800" + "800016040af40105");
  assert.is(fields(["ip", "nw_dst=10.244.2.0/24"]), "80000a020800" + "800019080af40200ffffff00");
  assert.is(fields(["ip", "nw_dst=10.244.2.7/24"]), "80000a020800" + "800019080af40200ffffff00", "value masked");
  assert.is(fields(["ip", "nw_dst=10.0.0.0/0"]), "80000a020800", "a /0 is no match at all");
  assert.is(fields(["reg0=100"]), "0001000400000064");
  assert.is(fields(["reg1=0x64"]), "0001020400000064");
  assert.is(fields(["tun_id=0"]), "80004c080000000000000000");
  assert.is(fields(["tun_src=198.18.0.2"]), "00013e04c6120002");
  // ovs-ofctl's order whatever the order given
  assert.is(fields(["reg0=1", "tun_id=0", "arp", "in_port=1"]), fields(["in_port=1", "arp", "tun_id=0", "reg0=1"]));
  const m = encodeMatch(["in_port=5"]);
  assert.is(hexOf(m), "0001000c800000040000000500000000", "type, length 12, padded to 16");
  assert.is(hexOf(encodeMatch([])), "0001000400000000");
});

test("actions: output, IN_PORT, output:reg, load, set_field, move; drop and goto_table as instructions", () => {
  assert.is(hexOf(encodeInstructions(["drop"])), "");
  assert.is(hexOf(encodeInstructions([])), "");
  assert.is(hexOf(encodeInstructions(["goto_table:30"])), "000100081e000000");
  assert.is(applied(["output:5"]), "0000001000000005" + "0000000000000000");
  assert.is(applied(["IN_PORT"]), "00000010fffffff8" + "0000000000000000");
  assert.is(applied(["output:NXM_NX_REG2[]"]), "ffff001800002320000f001f00010404ffff000000000000");
  assert.is(applied(["load:100->NXM_NX_REG0[]"]), "ffff0018000023200007001f000100040000000000000064");
  assert.is(applied(["load:5->NXM_NX_REG2[4..7]"]), "ffff00180000232000070103000104040000000000000005");
  assert.is(applied(["set_field:0a:58:0a:f4:01:01->eth_src"]), "00190010800008060a580af401010000");
  assert.is(applied(["set_field:0a:58:0a:f4:01:05->eth_dst"]), "00190010800006060a580af401050000");
  assert.is(applied(["set_field:2->arp_op"]), "0019001080002a020002000000000000");
  assert.is(applied(["set_field:0a:58:0a:f4:01:01->arp_sha"]), "00190010800030060a580af401010000");
  assert.is(applied(["set_field:10.244.1.1->arp_spa"]), "0019001080002c040af4010100000000");
  assert.is(applied(["set_field:198.18.0.2->tun_dst"]), "0019001000014004c612000200000000");
  const move = (a: string) => applied([`move:${a}`]).slice(20); // after type, len, vendor, subtype
  assert.is(move("NXM_NX_TUN_ID[0..23]->NXM_NX_REG0[0..23]"), "0018000000000001200800010004");
  assert.is(move("NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23]"), "0018000000000001000400012008");
  assert.is(move("NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]"), "0030000000000000040600000206");
  assert.is(move("NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]"), "0030000000000001220600012406");
  assert.is(move("NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]"), "0020000000000000200400002204");
  assert.is(move("NXM_NX_REG1[0..15]->NXM_NX_REG2[16..31]"), "0010000000100001020400010404");
  // apply-actions before goto_table, each action a multiple of 8
  const i = encodeInstructions(["set_field:2->arp_op", "IN_PORT", "goto_table:40"]);
  assert.is(i.readUInt16BE(2), 8 + 16 + 16);
  assert.is(hexOf(i.subarray(40)), "0001000828000000");
});

test("anything outside the vocabulary throws, naming the token", () => {
  const bad: [string[], string[], RegExp][] = [
    [["tcp"], ["drop"], /unsupported match field "tcp"/],
    [["nw_proto=6"], ["drop"], /unsupported match field "nw_proto=6"/],
    [["in_port=LOCAL"], ["drop"], /in_port=LOCAL.*not an integer/],
    [["reg0"], ["drop"], /unsupported match field "reg0"/],
    [["nw_src=10.0.0.1"], ["drop"], /"nw_src" needs "ip"/],
    [["arp", "arp_tpa=10.0.0.1", "ip"], ["drop"], /ethertype given twice/],
    [["ip", "nw_dst=10.0.0.256"], ["drop"], /not an IPv4 address/],
    [["in_port=1/1"], ["drop"], /takes no mask/],
    [["reg0=4294967296"], ["drop"], /does not fit in 32 bits/],
    [[], ["NORMAL"], /unsupported action "NORMAL"/],
    [[], ["output:LOCAL"], /unsupported field "LOCAL"/],
    [[], ["set_field:1->ip_dscp"], /unsupported set_field target "ip_dscp"/],
    [[], ["move:NXM_NX_REG0[]->NXM_NX_IPV6_SRC[]"], /unsupported field "NXM_NX_IPV6_SRC\[\]"/],
    [[], ["move:NXM_NX_REG0[]->NXM_OF_ETH_SRC[]"], /source is 32 bits, destination 48/],
    [[], ["load:16->NXM_NX_REG0[0..3]"], /does not fit in 4 bits/],
    [[], ["load:1->NXM_NX_REG0[0..32]"], /outside NXM_NX_REG0/],
    [[], ["drop", "output:1"], /"drop" must be the only action/],
    [[], ["goto_table:10", "output:1"], /"goto_table:10" must be the last action/],
    [[], ["mod_vlan_vid:5"], /unsupported action "mod_vlan_vid:5"/],
  ];
  for (const [match, actions, re] of bad) {
    const f: Flow = { table: 0, priority: 1, cookie: 0x1n, match, actions };
    assert.throws(() => encodeFlowMod({ op: "add", flow: f }, 1), (e: Error) => re.test(e.message) && e.message.includes("cannot encode flow \"table=0,priority=1"), `${match} ${actions}`);
  }
  assert.throws(() => encodeFlowMod(flow([], ["drop"], 255), 1), /table 255 outside 0..254/);
});

test("hello, bundle control and bundle add as ovs-ofctl sends them", () => {
  assert.is(hexOf(helloMessage(1)), "05000010000000010001000800000020");
  assert.is(hexOf(bundleControl(0x1f, 0, BundleCtrl.OpenRequest)), "052100100000001f0000000000000003");
  assert.is(hexOf(bundleControl(0x21, 0, BundleCtrl.CommitRequest)), "05210010000000210000000000040003");
  const add = bundleAdd(6, 0, encodeFlowMod(OPS[0]!, 6));
  assert.is(hexOf(add.subarray(0, 16)), "05220048000000060000000000000003");
  assert.is(add.length, 16 + 56);
  assert.is(hexOf(ofMessage(OFPT.BarrierRequest, 0x20)), "0514000800000020");
});

test("describeError names OpenFlow and Nicira errors", () => {
  const err = (...w: number[]) => Buffer.from(w.flatMap((x) => [x >> 8, x & 0xff]));
  assert.is(describeError(err(3, 2)), "OFPBIC_BAD_TABLE_ID (type 3, code 2)");
  assert.is(describeError(err(2, 4)), "OFPBAC_BAD_OUT_PORT (type 2, code 4)");
  assert.is(describeError(err(17, 13)), "OFPBFC_MSG_FAILED (type 17, code 13)");
  assert.is(describeError(err(99, 1)), "error (type 99, code 1)");
  assert.is(describeError(err(0xffff, 5, 0, 0x2320)), "Nicira error 5");
});

/** A fake switch on a unix socket: answers like ovs-vswitchd, records what it got, misbehaves on request. */
interface Fake {
  /** `unix:PATH` or `tcp:127.0.0.1:PORT`. */
  target: string;
  got: { type: number; xid: number; ctl?: number }[];
  closed: Promise<void>;
  server: Server;
}
type Mode = "ok" | "reject" | "silent" | "close" | "of13" | "noopen";
const dir = mkdtempSync(join(tmpdir(), "ovsplane-openflow-unit-"));
let fakes = 0;

function fakeSwitch(mode: Mode, rejectXid = 0, tcp = false): Promise<Fake> {
  const path = join(dir, `sw${++fakes}.sock`);
  const got: Fake["got"] = [];
  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  const server = createServer((s: Socket) => {
    let rx = Buffer.alloc(0);
    s.on("close", () => closedResolve());
    s.on("error", () => undefined);
    s.on("data", (d: Buffer) => {
      rx = Buffer.concat([rx, d]);
      while (rx.length >= 8 && rx.length >= rx.readUInt16BE(2)) {
        const m = rx.subarray(0, rx.readUInt16BE(2));
        rx = rx.subarray(m.length);
        const [type, xid] = [m[1]!, m.readUInt32BE(4)];
        got.push(type === OFPT.BundleControl ? { type, xid, ctl: m.readUInt16BE(12) } : { type, xid });
        if (mode === "silent") continue;
        if (mode === "close") return void s.destroy();
        const reply = (t: number, body = Buffer.alloc(0)) => s.write(ofMessage(t, xid, body));
        if (type === OFPT.Hello) s.write(ofMessage(OFPT.Hello, 99, Buffer.from([0, 1, 0, 8, 0, 0, 0, mode === "of13" ? 0x10 : 0x30])));
        else if (type === OFPT.BarrierRequest) reply(OFPT.BarrierReply);
        else if (type === OFPT.BundleAdd && xid === rejectXid) reply(OFPT.Error, Buffer.concat([Buffer.from([0, 3, 0, 2]), m.subarray(0, 64)]));
        else if (type === OFPT.BundleControl && !(mode === "noopen" && m.readUInt16BE(12) === BundleCtrl.OpenRequest)) {
          const b = Buffer.from(m.subarray(8, 16));
          b.writeUInt16BE(b.readUInt16BE(4) + 1, 4);
          reply(OFPT.BundleControl, b);
        }
      }
    });
  });
  return new Promise((resolve) => {
    const done = () => {
      const a = server.address();
      resolve({ target: typeof a === "string" || !a ? `unix:${path}` : `tcp:127.0.0.1:${a.port}`, got, closed, server });
    };
    if (tcp) server.listen(0, "127.0.0.1", done);
    else server.listen(path, done);
  });
}

async function expectCode(p: Promise<unknown>, code: number, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, CniError);
    assert.is((e as CniError).code, code, (e as CniError).message);
    assert.match((e as CniError).message, re);
    return;
  }
  assert.unreachable(`expected a code ${code} error`);
}

test("applyFlowsNative against a fake switch: one pipelined write, then commit; socket closed", async () => {
  const f = await fakeSwitch("ok");
  await applyFlowsNative(f.target, OPS);
  await f.closed;
  const types = f.got.map((g) => (g.type === OFPT.BundleControl ? `ctl${g.ctl}` : g.type));
  assert.equal(types, [OFPT.Hello, "ctl0", ...OPS.map(() => OFPT.BundleAdd), OFPT.BarrierRequest, "ctl4"]);
  assert.equal(f.got.slice(2, 2 + OPS.length).map((g) => g.xid), OPS.map((_, i) => 3 + i), "xids of the adds");
  f.server.close();
  await applyFlowsNative(f.target, []); // nothing to do: no connection at all
  const tcp = await fakeSwitch("ok", 0, true);
  assert.match(tcp.target, /^tcp:127\.0\.0\.1:\d+$/);
  await applyFlowsNative(tcp.target, OPS.slice(0, 2));
  await tcp.closed;
  assert.is(tcp.got.length, 6, "hello, open, 2 adds, barrier, commit over tcp:");
  tcp.server.close();
});

test("applyFlowsNative: a rejected flow names it, and the bundle is discarded, never committed", async () => {
  const f = await fakeSwitch("reject", 3 + 5);
  await expectCode(applyFlowsNative(f.target, OPS), 100,
    /rejected, nothing applied: OFPBIC_BAD_TABLE_ID \(type 3, code 2\) for flow add table=20,priority=300,cookie=0x6f76016c00000000,arp,arp_op=1/);
  await f.closed;
  assert.not.ok(f.got.some((g) => g.ctl === BundleCtrl.CommitRequest), "no commit");
  f.server.close();
});

test("applyFlowsNative: no switch, a silent one, a closing one, an OpenFlow 1.3-only one, one without OPEN_REPLY", async () => {
  const t0 = Date.now();
  await expectCode(applyFlowsNative(`unix:${join(dir, "none.sock")}`, OPS), 11, /ovs-vswitchd is not available.*cannot connect/);
  assert.ok(Date.now() - t0 < 1000, "fast");
  const silent = await fakeSwitch("silent");
  await expectCode(applyFlowsNative(silent.target, OPS, { timeoutMs: 200 }), 11, /no answer within 200 ms/);
  const closing = await fakeSwitch("close");
  await expectCode(applyFlowsNative(closing.target, OPS), 11, /connection closed/);
  const of13 = await fakeSwitch("of13");
  await expectCode(applyFlowsNative(of13.target, OPS), 100, /does not speak OpenFlow 1.4/);
  const noopen = await fakeSwitch("noopen");
  await expectCode(applyFlowsNative(noopen.target, OPS), 100, /no OPEN_REPLY before the barrier reply for bundle open/);
  assert.not.ok(noopen.got.some((g) => g.ctl === BundleCtrl.CommitRequest), "no commit");
  for (const f of [silent, closing, of13, noopen]) f.server.close();
  await expectCode(applyFlowsNative("bogus", OPS), 7, /ofSocket/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
