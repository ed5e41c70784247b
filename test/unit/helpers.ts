// Shared unit-test helpers.
import * as assert from "uvu/assert";
import { CniError } from "../../lib/cni/errors.ts";
import { parseConfig, type OvsplaneConfig } from "../../lib/plugin/config.ts";
import type { NodeSpec } from "../../lib/node/bridge.ts";
import type { PodFlowSpec } from "../../lib/dataplane/builders.ts";

/** Runs fn, expects a CniError with the code whose message names every inMsg, and returns it. */
export function fails(fn: () => unknown, code: number, ...inMsg: string[]): CniError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CniError);
    const err = e as CniError;
    assert.is(err.code, code, err.message);
    for (const s of inMsg) assert.ok(err.message.includes(s), `${JSON.stringify(err.message)} should name ${JSON.stringify(s)}`);
    return err;
  }
  assert.unreachable(`expected code ${code} naming ${inMsg.join(", ")}`);
  throw new Error("unreachable");
}

/** Awaits p, expects a CniError with the code (and message matching re), and returns it. */
export async function expectCode(p: Promise<unknown>, code: number, re?: RegExp): Promise<CniError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, CniError);
    const err = e as CniError;
    assert.is(err.code, code, err.message);
    if (re) assert.match(err.message, re);
    return err;
  }
  throw new assert.Assertion({ message: `expected a code ${code} error`, expects: code, actual: "resolved", operator: "throws" });
}

/** The fixture network "net1": node range 10.244.1.0/24 and n peers 198.18.0.(2+i) with 10.244.(2+i).0/24. */
export function net1Config(peers = 1): OvsplaneConfig {
  return parseConfig({
    cniVersion: "1.1.0",
    name: "net1",
    type: "ovsplane",
    peers: Array.from({ length: peers }, (_, i) => ({ nodeIP: `198.18.0.${2 + i}`, podCIDR: `10.244.${2 + i}.0/24` })),
    ipam: { type: "ovsplane-ipam", ranges: [[{ subnet: "10.244.1.0/24" }]] },
  });
}

/** The fixture node of net1 (flows do not depend on the datapath type). */
export const NET1_NODE: NodeSpec = {
  bridge: "br-int",
  datapathType: "system",
  tunnel: { name: "ovsp-vxlan", localIP: "198.18.0.1", dstPort: 4789 },
  gateway: { name: "ovsplane-gw", mac: "0a:58:0a:f4:01:01" },
};

/** The fixture pod of net1: port 5, 10.244.1.5, segment 100. */
export const NET1_POD: PodFlowSpec = { id: 0x1234n, port: 5, ip: "10.244.1.5", mac: "0a:58:0a:f4:01:05", segment: 100 };
