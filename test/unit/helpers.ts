// Shared unit-test helpers.
import * as assert from "uvu/assert";
import { CniError } from "../../lib/cni/errors.ts";
import { parseConfig, type OvsplaneConfig } from "../../lib/plugin/config.ts";
import type { NodeSpec } from "../../lib/node/bridge.ts";
import type { PodFlowSpec } from "../../lib/dataplane/builders.ts";
import type { CniRequest, NetConf } from "../../lib/cni/types.ts";

/** Runs fn, expects it to throw a CniError (any code), and returns it. */
export function caught(fn: () => unknown, what = "a CniError"): CniError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CniError);
    return e as CniError;
  }
  throw new assert.Assertion({ message: `expected ${what}`, expects: what, actual: "returned", operator: "throws" });
}

/** Awaits p, expects it to reject with a CniError (any code), and returns it. */
export async function rejection(p: Promise<unknown>, what = "a CniError"): Promise<CniError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, CniError);
    return e as CniError;
  }
  throw new assert.Assertion({ message: `expected ${what}`, expects: what, actual: "resolved", operator: "throws" });
}

/** Runs fn, expects a CniError with the code whose message names every inMsg, and returns it. */
export function fails(fn: () => unknown, code: number, ...inMsg: string[]): CniError {
  const err = caught(fn, `code ${code} naming ${inMsg.join(", ")}`);
  assert.is(err.code, code, err.message);
  for (const s of inMsg) assert.ok(err.message.includes(s), `${JSON.stringify(err.message)} should name ${JSON.stringify(s)}`);
  return err;
}

/** Awaits p, expects a CniError with the code (and message matching re), and returns it. */
export async function expectCode(p: Promise<unknown>, code: number, re?: RegExp): Promise<CniError> {
  const err = await rejection(p, `a code ${code} error`);
  assert.is(err.code, code, err.message);
  if (re) assert.match(err.message, re);
  return err;
}

/** A network configuration "net1" with an ovsplane-ipam section (fields of ipam and of the config overridden). */
export function ipamConf(ipam: Record<string, unknown>, extra: Partial<NetConf> = {}): NetConf {
  return { cniVersion: "1.1.0", name: "net1", type: "ovsplane", ipam: { type: "ovsplane-ipam", ...ipam }, ...extra };
}

/** A request as the dispatcher would build it: container "c1", eth0, no args (fields overridden by over). */
export function cniRequest(command: CniRequest["command"], conf: NetConf, over: Partial<CniRequest> = {}): CniRequest {
  return { command, containerID: "c1", netns: "/var/run/netns/p1", ifname: "eth0", args: {}, rawArgs: "", path: [], stdin: JSON.stringify(conf), conf, ...over };
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

/** CNI_* variables of a valid per-container request (ADD, DEL, CHECK). */
export const CNI_ENV = { CNI_CONTAINERID: "c0ffee", CNI_NETNS: "/var/run/netns/p1", CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin" };

/** Stdin of a valid 1.1.0 ovsplane request with an exec'd (host-local) IPAM, fields overridden by over. */
export function confText(over: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion: "1.1.0", name: "net1", type: "ovsplane", ipam: { type: "host-local", subnet: "10.244.1.0/24" }, ...over });
}
