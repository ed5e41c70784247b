// ovsplane-ipam: the host-local compatible IPAM plugin (ADD, DEL, CHECK, GC, STATUS), usable in-process.
import { readFile } from "node:fs/promises";
import { checkFailed, CniError, Code, invalidConfig, messageOf } from "../cni/errors.ts";
import { parseIp } from "../net/ip.ts";
import type { Attachment, CniRequest, DNS, Plugin, Result } from "../cni/types.ts";
import { allocate, poolFor, releaseOwner, setCapacity, setUsage } from "./allocator.ts";
import { describeSet, findPool, parseIpamConfig, parseResolvConf, parseStoreConfig } from "./config.ts";
import { checkOwner, LeaseStore, ownedBy, type Lease } from "./store.ts";

/** CNI_ARGS keys ovsplane-ipam understands (besides the runtime's usual ones). */
export const IPAM_ARGS = ["IP"] as const;

/** Empty lease files younger than this are taken to be in the middle of being written, and GC leaves them alone. */
export const GC_GRACE_MS = 60_000;

async function readDns(path: string | undefined): Promise<DNS> {
  if (path === undefined) return {};
  try {
    return parseResolvConf(await readFile(path, "utf8"));
  } catch (e) {
    throw invalidConfig("ipam.resolvConf", path, `cannot read: ${messageOf(e)}`, e);
  }
}

/** ADD: one address per range set (reusing this attachment's lease when it has one). */
async function add(req: CniRequest): Promise<Result> {
  const config = parseIpamConfig(req.conf, req.args);
  checkOwner(req.containerID, req.ifname);
  const store = new LeaseStore({ dataDir: config.dataDir, network: config.network });
  const dns = await readDns(config.resolvConf);
  await store.ensure();
  const allocs = await allocate({ config, store, containerID: req.containerID, ifname: req.ifname });
  const result: Result = {
    cniVersion: req.conf.cniVersion,
    ips: allocs.map((a) => ({ address: `${a.ip}/${a.pool.subnet.prefix}`, gateway: a.pool.gateway.toString() })),
  };
  if (config.routes.length) result.routes = config.routes;
  result.dns = dns;
  return result;
}

/** DEL: removes this attachment's leases; succeeds when there are none (or the directory is gone). */
async function del(req: CniRequest): Promise<void> {
  const { network, dataDir } = parseStoreConfig(req.conf);
  checkOwner(req.containerID, req.ifname);
  await releaseOwner(new LeaseStore({ dataDir, network }), req.containerID, req.ifname);
}

/** CHECK: every range set has a lease of this attachment, matching prevResult's addresses when given. */
async function check(req: CniRequest): Promise<void> {
  const config = parseIpamConfig(req.conf, req.args);
  checkOwner(req.containerID, req.ifname);
  const store = new LeaseStore({ dataDir: config.dataDir, network: config.network });
  const who = `${req.containerID}/${req.ifname}`;
  const mine = (await store.leases()).filter((l) => ownedBy(l.owner, req.containerID, req.ifname, true));
  if (mine.length === 0) throw checkFailed(`IPAM lease of ${who}`, `no lease in ${store.dir}`);
  config.rangeSets.forEach((set, i) => {
    if (!mine.some((l) => poolFor(set, l.ip))) throw checkFailed(`IPAM lease of ${who}`, `none in range set ${i} (${describeSet(set)})`);
  });
  for (const ip of req.prevResult?.ips ?? []) {
    const [addr, prefix] = ip.address.split("/");
    let parsed;
    try {
      parsed = parseIp(addr ?? "");
    } catch (e) {
      throw checkFailed(`prevResult address ${JSON.stringify(ip.address)}`, messageOf(e), e);
    }
    const hit = findPool(config.rangeSets, parsed);
    if (!hit) continue;
    if (!mine.some((l) => l.ip.equals(parsed))) throw checkFailed(`IPAM lease of ${who}`, `prevResult address ${ip.address} is not leased to it`);
    if (prefix !== undefined && Number(prefix) !== hit.pool.subnet.prefix) {
      throw checkFailed(`prevResult address ${ip.address}`, `prefix differs from ${hit.pool.field}.subnet /${hit.pool.subnet.prefix}`);
    }
  }
}

function validAttachments(raw: unknown): Attachment[] {
  const field = "cni.dev/valid-attachments";
  if (!Array.isArray(raw)) throw invalidConfig(field, raw, "required: a list of {containerID, ifname}");
  return raw.map((a, i) => {
    const o = a as Partial<Attachment> | null;
    if (!o || typeof o.containerID !== "string" || typeof o.ifname !== "string") {
      throw invalidConfig(`${field}[${i}]`, a, "must be {containerID, ifname}");
    }
    return { containerID: o.containerID, ifname: o.ifname };
  });
}

/** True when GC must keep a lease: its attachment is valid, or it is a fresh empty file still being written. */
function keep(lease: Lease, valid: readonly Attachment[], now: number): boolean {
  const o = lease.owner;
  if (!o) return now - lease.mtimeMs < GC_GRACE_MS;
  if (o.ifname === undefined) return valid.some((v) => v.containerID === o.containerID);
  return valid.some((v) => v.containerID === o.containerID && v.ifname === o.ifname);
}

/** GC: removes every lease of this network whose attachment is not in cni.dev/valid-attachments; reports all failures at the end. */
async function gc(req: CniRequest): Promise<void> {
  const { network, dataDir } = parseStoreConfig(req.conf);
  const valid = validAttachments(req.conf["cni.dev/valid-attachments"]);
  const store = new LeaseStore({ dataDir, network });
  const errors: string[] = [];
  let leases: Lease[] = [];
  try {
    leases = await store.leases();
  } catch (e) {
    errors.push(messageOf(e));
  }
  const now = Date.now();
  for (const lease of leases.filter((l) => !keep(l, valid, now))) {
    try {
      // Re-checked on the current content; an empty file that had an owner a moment ago may be a new reservation.
      await store.removeIfOwned(lease.path, (owner) => (owner ? !keep({ ...lease, owner }, valid, now) : !lease.owner));
    } catch (e) {
      errors.push(messageOf(e));
    }
  }
  await store.removeStaleTemp(GC_GRACE_MS);
  if (errors.length) {
    throw new CniError(Code.IoFailure, `IPAM GC of ${store.dir}: ${errors.length} lease(s) could not be removed`, errors.join("; "));
  }
}

/** STATUS: not available (50) when the lease directory is not writable or a range set has no free address. */
async function status(req: CniRequest): Promise<void> {
  const config = parseIpamConfig(req.conf, {});
  const store = new LeaseStore({ dataDir: config.dataDir, network: config.network });
  if (!(await store.writable())) throw new CniError(Code.NotAvailable, `IPAM lease directory ${store.dir} is not writable`);
  const leases = await store.leases();
  config.rangeSets.forEach((set, i) => {
    const cap = setCapacity(set);
    const used = setUsage(set, leases);
    if (used >= cap) {
      throw new CniError(Code.NotAvailable, `IPAM range set ${i} (${describeSet(set)}) has no free address left (${used} of ${cap} leased)`);
    }
  });
}

/** The IPAM plugin; the ovsplane plugin calls it in-process with its own request (IPAM config in conf.ipam). */
export const ipamPlugin: Plugin = { add, del, check, gc, status };
