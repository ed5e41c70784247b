// Unit tests of oxm.ts's decoders: decode(encode(x)) is x, and the other encodings OVS may send come back canonical.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { act, exact, FIELD_ORDER, IN_PORT, on, slice, type Action, type Match } from "../../lib/ovs/flow.ts";
import { encodeInstructions, encodeMatch } from "../../lib/ovs/oxm.ts";
import { decodeInstructions, decodeMatch } from "../../lib/ovs/oxm-decode.ts";
import { EXTRA_FLOWS, GOLDEN_FLOWS } from "./openflow-fixtures.ts";

const hex = (h: string) => Buffer.from(h.replace(/\s/g, ""), "hex");
/** An OXM match of the given fields (hex), padded. */
const oxmMatch = (fields: string) => {
  const b = hex(fields);
  return Buffer.concat([hex("0001"), Buffer.from([0, 4 + b.length]), b, Buffer.alloc((8 - ((4 + b.length) % 8)) % 8)]);
};
/** APPLY_ACTIONS around actions (hex). */
const apply = (actions: string) => {
  const b = hex(actions);
  return Buffer.concat([hex("0004"), Buffer.from([0, 8 + b.length]), Buffer.alloc(4), b]);
};

test("decode(encode(flow)) deep-equals every golden and extra flow's match and actions", () => {
  for (const f of [...GOLDEN_FLOWS, ...EXTRA_FLOWS]) {
    const m = encodeMatch(f.match);
    const { match, length } = decodeMatch(Buffer.concat([m, hex("deadbeef")]));
    assert.equal(match, f.match);
    assert.is(length, m.length, "length includes the padding");
    assert.equal(Object.keys(match), Object.keys(f.match).sort((a, b) => order(a) - order(b)), "keys in FIELD_ORDER");
    assert.equal(decodeInstructions(encodeInstructions(f.actions)), f.actions);
  }
});
const order = (k: string) => FIELD_ORDER.indexOf(k as (typeof FIELD_ORDER)[number]);

test("match: full masks dropped, values cut to the mask, zero masks left out, any field order", () => {
  // reg0=7/0xffffffff, nw_dst=10.244.2.7/24 (value outside the mask), tun_id=5/0 — and ethertype after its fields
  const m = oxmMatch("00010108 00000007 ffffffff" + "80001908 0af40207 ffffff00" + "80004d10 0000000000000005 0000000000000000" + "80000a02 0800");
  const want: Match = { ...on.ipDst("10.244.2.0/24"), reg0: exact(7) };
  assert.equal(decodeMatch(m).match, want);
  assert.equal(decodeMatch(oxmMatch("")).match, {});
});

test("match: an unknown field, a wrong length, a duplicate or a non-OXM match throws", () => {
  assert.throws(() => decodeMatch(oxmMatch("80001001 06")), /unsupported field OXM 0x80001001/); // ip_dscp
  assert.throws(() => decodeMatch(oxmMatch("80000002 0005")), /in_port\) has length 2, expected 4 bytes/);
  assert.throws(() => decodeMatch(oxmMatch("00010004 00000001 00010004 00000002")), /reg0 given twice/);
  assert.throws(() => decodeMatch(hex("0000000c00000000")), /not an OXM match/);
});

test("actions: the other encodings of a write come back as the constructors build them", () => {
  // OFPAT_SET_FIELD on a whole register: load, as act.loadReg()
  assert.equal(decodeInstructions(apply("0019001000010804 0000000300000000")), [act.loadReg(4, 3)]);
  // NXAST_REG_LOAD2 of a whole register, of a register under a contiguous mask, of a whole MAC field
  assert.equal(decodeInstructions(apply("ffff001800002320 0021 00010004 00000064 000000000000")), [act.loadReg(0, 100)]);
  assert.equal(decodeInstructions(apply("ffff001800002320 0021 00010508 00000050 000000f0 0000")), [act.load(slice("reg2", 4, 7), 5)]);
  assert.equal(decodeInstructions(apply("ffff001800002320 0021 80000606 0a580af40105 00000000")), [act.setMac("dl_dst", "0a:58:0a:f4:01:05")]);
  // OFPAT_SET_FIELD of a non-register field stays set_field
  assert.equal(decodeInstructions(apply("0019001080004c08 0000000000123456")), [act.setInt("tun_id", 0x123456)]);
  // NXAST_REG_LOAD of a whole non-register field stays load (what we sent)
  const load: Action = act.load(slice("dl_dst"), 0x0a0000000001n);
  assert.equal(decodeInstructions(encodeInstructions([load])), [load]);
  // a non-contiguous mask has no slice
  assert.throws(() => decodeInstructions(apply("ffff001800002320 0021 00010508 00000005 00000005 0000")), /non-contiguous mask 0x5/);
});

test("actions: output_reg as NXAST_OUTPUT_REG2, move with OXM headers, IN_PORT, goto before apply", () => {
  assert.equal(decodeInstructions(apply("ffff001800002320 0020 001f ffff 00010404 000000000000")), [act.outputReg(2)]);
  // move eth_src -> eth_dst written with the OXM headers instead of the NXM ones
  assert.equal(decodeInstructions(apply("ffff001800002320 0006 0030 0000 0000 80000806 80000606")), [act.move(slice("dl_src"), slice("dl_dst"))]);
  assert.equal(decodeInstructions(apply("00000010 fffffff8 ffff 000000000000")), [{ type: "output", port: IN_PORT }]);
  assert.equal(decodeInstructions(Buffer.concat([hex("000100081e000000"), apply("00000010 00000002 0000 000000000000")])), [act.output(2), act.goto(30)]);
  assert.equal(decodeInstructions(Buffer.alloc(0)), [], "no instruction: drop");
  assert.equal(decodeInstructions(apply("")), [], "an empty APPLY_ACTIONS: drop");
});

test("actions: anything else throws, naming it", () => {
  assert.throws(() => decodeInstructions(hex("0003000800000000")), /unsupported instruction type 3/); // WRITE_ACTIONS
  assert.throws(() => decodeInstructions(apply("0011000800000000")), /unsupported action type 17/); // PUSH_VLAN
  assert.throws(() => decodeInstructions(apply("ffff001000002320 0026 000000000000")), /unsupported Nicira action subtype 38/);
  assert.throws(() => decodeInstructions(apply("0000002000000001")), /bad length 32/);
});

test.run();
