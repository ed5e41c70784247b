// GC: remove this network's attachments absent from cni.dev/valid-attachments, crash residue included.
import { links } from "../host/links.ts";
import { connect, type OvsdbClient } from "../ovs/ovsdb.ts";
import type { FlowOp } from "../ovs/flow.ts";
import { ofSocketAlive, withSwitch } from "../node/flows.ts";
import { CookieKind, cookie, EXACT_MASK, KIND_MASK, parseCookie, podCookie } from "../dataplane/pipeline.ts";
import type { Attachment as CniAttachment, CniRequest } from "../cni/types.ts";
import { parseConfig, type OvsplaneConfig } from "./config.ts";
import { delegateIpam } from "./delegate.ts";
import { deleteVeth, incomplete, partFailed, removeAttachments } from "./del.ts";
import { attachmentId, parseVethAlias } from "../dataplane/names.ts";
import { attachmentKey } from "../dataplane/attachment.ts";
import { listPorts, type TaggedPort } from "../node/bridge.ts";
import { OVS_TIMEOUT_MS, withLock } from "../node/lock.ts";
import { calls } from "./calllog.ts";

/** Host veths of this network (tagged by alias) whose attachment is not valid: left by a crashed ADD. */
async function orphanVeths(cfg: OvsplaneConfig, valid: Set<string>): Promise<string[]> {
  const veths = await (await links()).veths();
  return veths.filter((l) => {
    const a = parseVethAlias(l.ifalias);
    return a?.network === cfg.name && !valid.has(attachmentKey(a));
  }).map((l) => l.ifname);
}

/** The flow id of a port's attachment (also for ports whose other tags are broken). */
function portAttachmentId(p: TaggedPort): bigint | undefined {
  const a = p.attachment;
  return a ? attachmentId(a.network, a.containerID, a.ifname) : undefined;
}

/** Pod flows whose attachment has no port on this OVSDB (any network): left by a crash between steps. */
async function orphanPodFlows(client: OvsdbClient, cfg: OvsplaneConfig): Promise<FlowOp[]> {
  if (!(await ofSocketAlive(cfg.ofSocket, 1000))) return [];
  const live = new Set((await listPorts(client)).flatMap((p) => portAttachmentId(p) ?? []));
  const flows = await withSwitch(cfg.ofSocket, (sw) => sw.read([{ cookie: cookie(CookieKind.Pod, 0n), mask: KIND_MASK }]));
  const orphans = new Set(flows.map((f) => parseCookie(f.cookie)!.id).filter((id) => !live.has(id)));
  return [...orphans].map((id) => ({ op: "delete", cookie: podCookie(id), mask: EXACT_MASK }));
}

/** The CNI GC of ovsplane; continues past errors and reports them all. */
export async function gc(req: CniRequest): Promise<void> {
  const cfg = parseConfig(req.conf);
  const raw = req.conf["cni.dev/valid-attachments"];
  const valid = new Set((Array.isArray(raw) ? (raw as CniAttachment[]) : []).map((a) => attachmentKey(a)));
  const errors: Error[] = [];
  calls.step("OVS");
  const client = await connect(cfg.ovsdbSocket, { timeoutMs: OVS_TIMEOUT_MS });
  try {
    // A port of this network whose tags are broken is not a valid attachment either.
    const stale = (await listPorts(client, cfg.name)).filter((p) => !p.attachment || !valid.has(attachmentKey(p.attachment)));
    const ids = stale.flatMap((p) => portAttachmentId(p) ?? []);
    // In agent mode the network's node-wide flows and host state are the agent's: GC removes pods' state only.
    await removeAttachments(client, cfg, stale, ids, { network: !cfg.agent }).catch((e) => errors.push(partFailed("OVS", e)));
    const veths = new Set([...stale.map((p) => p.name), ...(await orphanVeths(cfg, valid).catch((e) => (errors.push(partFailed("links", e)), [])))]);
    await Promise.all([...veths].map((v) => deleteVeth(v).catch((e) => errors.push(partFailed(`veth ${v}`, e)))));
    calls.step("flows");
    await withLock(client, cfg.bridge, async () => {
      const ops = await orphanPodFlows(client, cfg);
      if (ops.length) await withSwitch(cfg.ofSocket, (sw) => sw.apply(ops));
    }).catch((e) => errors.push(partFailed("flows", e)));
  } catch (e) {
    errors.push(partFailed("GC", e));
  } finally {
    client.close();
  }
  calls.step("IPAM");
  await delegateIpam(req, "GC").catch((e) => errors.push(partFailed("IPAM", e)));
  if (errors.length) throw incomplete("GC", errors);
}
