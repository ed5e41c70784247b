// CHECK and STATUS: verify an attachment piece by piece; report whether OVS can serve ADD.
import { CniError, checkFailed, Code, messageOf } from "../cni/errors.ts";
import { ipJson, netnsExists } from "../host/netns.ts";
import { connect, waitForCurCfg } from "../ovs/ovsdb.ts";
import { dumpFlows, ofSocketAlive } from "../node/flows.ts";
import { EXACT_MASK, podCookie, segmentCookie } from "../dataplane/pipeline.ts";
import type { CniRequest } from "../cni/types.ts";
import { parseConfig } from "./config.ts";
import { delegateIpam } from "./delegate.ts";
import { attachmentId, hostVethName, networkId } from "../dataplane/names.ts";
import { bridgeExists, findPort, Tag } from "../node/bridge.ts";
import { OVS_TIMEOUT_MS } from "../node/lock.ts";

/** Number of flows every pod attachment owns (see flows/builders.podFlows). */
export const POD_FLOW_COUNT = 6;

interface LinkJson {
  ifname: string;
  address?: string;
  mtu?: number;
  operstate?: string;
  addr_info?: { local: string; prefixlen: number }[];
}

/** The CNI CHECK of ovsplane. */
export async function check(req: CniRequest): Promise<void> {
  const cfg = parseConfig(req.conf);
  const prev = req.prevResult;
  if (!prev) throw checkFailed("prevResult", "required for CHECK");
  if (!netnsExists(req.netns)) throw checkFailed(`netns ${req.netns}`, "does not exist");
  const want = prev.interfaces?.find((i) => i.name === req.ifname && i.sandbox);
  const links = await ipJson<LinkJson[]>(["addr", "show", "dev", req.ifname], req.netns).catch(() => []);
  const link = links[0];
  if (!link) throw checkFailed(`interface ${req.ifname}`, `missing in ${req.netns}`);
  if (want?.mac && link.address?.toLowerCase() !== want.mac.toLowerCase()) throw checkFailed(`interface ${req.ifname}`, `MAC ${link.address}, expected ${want.mac}`);
  if (want?.mtu && link.mtu !== want.mtu) throw checkFailed(`interface ${req.ifname}`, `MTU ${link.mtu}, expected ${want.mtu}`);
  const have = new Set((link.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  for (const ip of prev.ips ?? []) if (!have.has(ip.address)) throw checkFailed(`address ${ip.address}`, `missing on ${req.ifname}`);
  const routes = await ipJson<{ dst: string; gateway?: string }[]>(["route", "show", "dev", req.ifname], req.netns);
  for (const r of prev.routes ?? []) {
    const dst = r.dst === "0.0.0.0/0" ? "default" : r.dst.replace(/\/32$/, "");
    if (!routes.some((x) => x.dst === dst && (!r.gw || x.gateway === r.gw))) throw checkFailed(`route ${r.dst}`, `missing in ${req.netns}`);
  }
  const hostName = hostVethName(req.containerID, req.ifname);
  const client = await connect(cfg.ovsdbSocket, { timeoutMs: OVS_TIMEOUT_MS });
  let segment: number;
  try {
    const port = await findPort(client, hostName);
    if (!port) throw checkFailed(`OVS port ${hostName}`, "missing");
    const t = port.externalIds;
    if (t[Tag.Network] !== cfg.name || t[Tag.ContainerID] !== req.containerID || t[Tag.Ifname] !== req.ifname) {
      throw checkFailed(`OVS port ${hostName}`, "tags do not name this attachment");
    }
    if (!port.ofport || port.ofport <= 0) throw checkFailed(`OVS port ${hostName}`, "has no OpenFlow port number");
    segment = Number(t[Tag.Segment]);
  } finally {
    client.close();
  }
  const podFlows = await dumpFlows(cfg.ofSocket, podCookie(attachmentId(cfg.name, req.containerID, req.ifname)), EXACT_MASK);
  if (podFlows.length !== POD_FLOW_COUNT) throw checkFailed("pod flows", `${podFlows.length} of ${POD_FLOW_COUNT} present`);
  const segFlows = await dumpFlows(cfg.ofSocket, segmentCookie(networkId(cfg.name), segment), EXACT_MASK);
  if (!segFlows.length) throw checkFailed(`segment ${segment} flow`, "missing");
  await delegateIpam(req, "CHECK");
}

/** The CNI STATUS of ovsplane: OVSDB answers and ovs-vswitchd serves the bridge (code 50 otherwise). */
export async function status(req: CniRequest): Promise<void> {
  const cfg = parseConfig(req.conf);
  const timeout = 2000;
  let client;
  try {
    client = await connect(cfg.ovsdbSocket, { timeoutMs: timeout });
  } catch (e) {
    throw new CniError(Code.NotAvailable, `OVSDB at ${cfg.ovsdbSocket} does not answer: ${messageOf(e)}`);
  }
  try {
    if (await bridgeExists(client, cfg.bridge)) {
      if (!(await ofSocketAlive(cfg.ofSocket, timeout))) {
        throw new CniError(Code.NotAvailable, `ovs-vswitchd does not serve bridge ${cfg.bridge} on ${cfg.ofSocket}`);
      }
    } else {
      const res = await client.transact([
        { op: "mutate", table: "Open_vSwitch", where: [], mutations: [["next_cfg", "+=", 1]] },
        { op: "select", table: "Open_vSwitch", where: [], columns: ["next_cfg"] },
      ]);
      await waitForCurCfg(client, Number(res[1].rows[0].next_cfg), timeout).catch((e) => {
        throw new CniError(Code.NotAvailable, `ovs-vswitchd does not answer: ${messageOf(e)}`);
      });
    }
  } catch (e) {
    if (e instanceof CniError && e.code === Code.NotAvailable) throw e;
    throw new CniError(Code.NotAvailable, `OVS is not ready: ${messageOf(e)}`);
  } finally {
    client.close();
  }
  await delegateIpam(req, "STATUS");
}
