// CHECK and STATUS: verify an attachment piece by piece; report whether OVS can serve ADD.
import { CniError, checkFailed, Code, messageOf } from "../cni/errors.ts";
import { links } from "../host/links.ts";
import { netnsExists } from "../host/netns.ts";
import { connect, waitForCurCfg } from "../ovs/ovsdb.ts";
import { ofSocketAlive, readFlows } from "../node/flows.ts";
import { flowKey, renderFlow } from "../ovs/flow-text.ts";
import { podFlows, segmentFlows, type PodFlowSpec } from "../dataplane/builders.ts";
import { ipv4Of } from "../dataplane/attachment.ts";
import { EXACT_MASK, podCookie, segmentCookie } from "../dataplane/pipeline.ts";
import type { CniRequest } from "../cni/types.ts";
import { parseConfig, type OvsplaneConfig } from "./config.ts";
import { withPeersFile } from "./peersfile.ts";
import { delegateIpam } from "./delegate.ts";
import { attachmentId, GATEWAY_PORT, gatewayMac, hostVethName } from "../dataplane/names.ts";
import { bridgeExists, findPort } from "../node/bridge.ts";
import { OVS_TIMEOUT_MS } from "../node/lock.ts";
import { calls } from "./calllog.ts";

/** The CNI CHECK of ovsplane. */
export async function check(req: CniRequest): Promise<void> {
  const cfg = parseConfig(withPeersFile(req.conf));
  calls.step("interface");
  const prev = req.prevResult;
  if (!prev) throw checkFailed("prevResult", "required for CHECK");
  if (!netnsExists(req.netns)) throw checkFailed(`netns ${req.netns}`, "does not exist");
  const want = prev.interfaces?.find((i) => i.name === req.ifname && i.sandbox);
  const kernel = await links();
  // A missing device is undefined; anything else is a failure to look, not a verdict.
  const link = await kernel.interfaceOf(req.ifname, req.netns).catch((e) => {
    throw checkFailed(`interface ${req.ifname}`, `cannot read it in ${req.netns}: ${messageOf(e)}`, e);
  });
  if (!link) throw checkFailed(`interface ${req.ifname}`, `missing in ${req.netns}`);
  if (want?.mac && link.address?.toLowerCase() !== want.mac.toLowerCase()) throw checkFailed(`interface ${req.ifname}`, `MAC ${link.address}, expected ${want.mac}`);
  if (want?.mtu && link.mtu !== want.mtu) throw checkFailed(`interface ${req.ifname}`, `MTU ${link.mtu}, expected ${want.mtu}`);
  const have = new Set((link.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  for (const ip of prev.ips ?? []) if (!have.has(ip.address)) throw checkFailed(`address ${ip.address}`, `missing on ${req.ifname}`);
  const routes = await kernel.podRoutes(req.netns, req.ifname);
  for (const r of prev.routes ?? []) {
    const dst = r.dst === "0.0.0.0/0" ? "default" : r.dst.replace(/\/32$/, "");
    if (!routes.some((x) => x.dst === dst && (!r.gw || x.gateway === r.gw))) throw checkFailed(`route ${r.dst}`, `missing in ${req.netns}`);
  }
  const hostName = hostVethName(req.containerID, req.ifname);
  calls.step("OVS port");
  const client = await connect(cfg.ovsdbSocket, { timeoutMs: OVS_TIMEOUT_MS });
  let pod: PodFlowSpec;
  let gatewayPort: number;
  try {
    const port = await findPort(client, hostName);
    if (!port) throw checkFailed(`OVS port ${hostName}`, "missing");
    const a = port.attachment;
    if (!a || a.network !== cfg.name || a.containerID !== req.containerID || a.ifname !== req.ifname) {
      throw checkFailed(`OVS port ${hostName}`, port.tagError ?? "tags do not name this attachment");
    }
    if (!port.ofport || port.ofport <= 0) throw checkFailed(`OVS port ${hostName}`, "has no OpenFlow port number");
    const ip = ipv4Of(a);
    if (!ip) throw checkFailed(`OVS port ${hostName}`, "tags name no IPv4 address");
    pod = { id: attachmentId(cfg.name, req.containerID, req.ifname), port: port.ofport, ip, mac: a.mac, segment: a.segment };
    const gw = await findPort(client, GATEWAY_PORT);
    if (!gw?.ofport || gw.ofport <= 0) throw checkFailed(`gateway port ${GATEWAY_PORT}`, "missing or without an OpenFlow port number");
    gatewayPort = gw.ofport;
  } finally {
    client.close();
  }
  calls.step("flows");
  await checkFlows(cfg, pod, gatewayPort);
  calls.step("IPAM");
  await delegateIpam(req, "CHECK");
}

/** The pod's flows and its segment's flow on the bridge are exactly what the builders make for it. */
async function checkFlows(cfg: OvsplaneConfig, pod: PodFlowSpec, gatewayPort: number): Promise<void> {
  const want = [...podFlows(pod, { gateway: gatewayPort, gatewayMAC: gatewayMac(cfg.bridge) }), ...segmentFlows(pod.segment)];
  const have = await readFlows(cfg.ofSocket, [
    { cookie: podCookie(pod.id), mask: EXACT_MASK },
    { cookie: segmentCookie(pod.segment), mask: EXACT_MASK },
  ]);
  const byKey = new Map(have.map((f) => [flowKey(f), f]));
  for (const w of want) {
    const h = byKey.get(flowKey(w));
    const what = w.cookie === podCookie(pod.id) ? "pod flow" : `segment ${pod.segment} flow`;
    if (!h) throw checkFailed(what, `missing: ${renderFlow(w)}`);
    if (renderFlow(h) !== renderFlow(w)) throw checkFailed(what, `is ${renderFlow(h)}, expected ${renderFlow(w)}`);
    byKey.delete(flowKey(w));
  }
  const extra = [...byKey.values()][0];
  if (extra) throw checkFailed("pod flows", `unexpected flow ${renderFlow(extra)}`);
}

/** The CNI STATUS of ovsplane: OVSDB answers and ovs-vswitchd serves the bridge (code 50 otherwise). */
export async function status(req: CniRequest): Promise<void> {
  const cfg = parseConfig(withPeersFile(req.conf));
  const timeout = 2000;
  let client;
  try {
    client = await connect(cfg.ovsdbSocket, { timeoutMs: timeout });
  } catch (e) {
    throw new CniError(Code.NotAvailable, `OVSDB at ${cfg.ovsdbSocket} does not answer: ${messageOf(e)}`, "", { cause: e });
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
        throw new CniError(Code.NotAvailable, `ovs-vswitchd does not answer: ${messageOf(e)}`, "", { cause: e });
      });
    }
  } catch (e) {
    if (e instanceof CniError && e.code === Code.NotAvailable) throw e;
    throw new CniError(Code.NotAvailable, `OVS is not ready: ${messageOf(e)}`, "", { cause: e });
  } finally {
    client.close();
  }
  await delegateIpam(req, "STATUS");
}
