// GC: remove this network's attachments absent from cni.dev/valid-attachments, crash residue included.
import { CniError, Code, messageOf } from "../cni/errors.ts";
import { ipJson } from "../host/netns.ts";
import { connect, type OvsdbClient } from "../ovs/ovsdb.ts";
import { applyFlows, dumpFlows, ofSocketAlive } from "../node/flows.ts";
import { CookieKind, cookie, EXACT_MASK, KIND_MASK, parseCookie, podCookie, type FlowOp } from "../dataplane/pipeline.ts";
import type { Attachment, CniRequest } from "../cni/types.ts";
import { parseConfig, type OvsplaneConfig } from "./config.ts";
import { delegateIpam } from "./delegate.ts";
import { deleteVeth, removeAttachments } from "./del.ts";
import { attachmentId, parseVethAlias } from "../dataplane/names.ts";
import { listPorts, Tag } from "../node/bridge.ts";
import { OVS_TIMEOUT_MS, withLock } from "../node/lock.ts";

const key = (containerID: string | undefined, ifname: string | undefined) => `${containerID}/${ifname}`;

/** Host veths of this network (tagged by alias) whose attachment is not valid: left by a crashed ADD. */
async function orphanVeths(cfg: OvsplaneConfig, valid: Set<string>): Promise<string[]> {
  const links = await ipJson<{ ifname: string; ifalias?: string }[]>(["link", "show", "type", "veth"]);
  return links.filter((l) => {
    const a = parseVethAlias(l.ifalias);
    return a?.network === cfg.name && !valid.has(key(a.containerID, a.ifname));
  }).map((l) => l.ifname);
}

/** Pod flows whose attachment has no port on this OVSDB (any network): left by a crash between steps. */
async function orphanPodFlows(client: OvsdbClient, cfg: OvsplaneConfig): Promise<FlowOp[]> {
  if (!(await ofSocketAlive(cfg.ofSocket, 1000))) return [];
  const live = new Set((await listPorts(client)).map((p) => attachmentId(p.externalIds[Tag.Network]!, p.externalIds[Tag.ContainerID] ?? "", p.externalIds[Tag.Ifname] ?? "")));
  const seen = new Set<bigint>();
  for (const line of await dumpFlows(cfg.ofSocket, cookie(CookieKind.Pod, 0n), KIND_MASK)) {
    const m = /cookie=(0x[0-9a-f]+)/.exec(line);
    const id = m ? parseCookie(BigInt(m[1]!))?.id : undefined;
    if (id !== undefined && !live.has(id)) seen.add(id);
  }
  return [...seen].map((id) => ({ op: "delete", cookie: podCookie(id), mask: EXACT_MASK }));
}

/** The CNI GC of ovsplane; continues past errors and reports them all. */
export async function gc(req: CniRequest): Promise<void> {
  const cfg = parseConfig(req.conf);
  const raw = req.conf["cni.dev/valid-attachments"];
  const valid = new Set((Array.isArray(raw) ? (raw as Attachment[]) : []).map((a) => key(a.containerID, a.ifname)));
  const errors: string[] = [];
  const client = await connect(cfg.ovsdbSocket, { timeoutMs: OVS_TIMEOUT_MS });
  try {
    const stale = (await listPorts(client, cfg.name)).filter((p) => !valid.has(key(p.externalIds[Tag.ContainerID], p.externalIds[Tag.Ifname])));
    const ids = stale.map((p) => attachmentId(cfg.name, p.externalIds[Tag.ContainerID] ?? "", p.externalIds[Tag.Ifname] ?? ""));
    await removeAttachments(client, cfg, stale, ids).catch((e) => errors.push(`OVS: ${messageOf(e)}`));
    const veths = new Set([...stale.map((p) => p.name), ...(await orphanVeths(cfg, valid).catch((e) => (errors.push(`links: ${messageOf(e)}`), [])))]);
    await Promise.all([...veths].map((v) => deleteVeth(v).catch((e) => errors.push(`veth ${v}: ${messageOf(e)}`))));
    await withLock(client, cfg.bridge, async () => applyFlows(cfg.ofSocket, await orphanPodFlows(client, cfg))).catch((e) =>
      errors.push(`flows: ${messageOf(e)}`),
    );
  } catch (e) {
    errors.push(messageOf(e));
  } finally {
    client.close();
  }
  await delegateIpam(req, "GC").catch((e) => errors.push(`IPAM: ${messageOf(e)}`));
  if (errors.length) throw new CniError(Code.StepFailed, `GC incomplete: ${errors.join("; ")}`);
}
