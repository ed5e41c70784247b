// Address allocation: host-local's round-robin iterator over a range set, reservation, reuse and capacity.
import { CniError, Code } from "../cni/errors.ts";
import { IpAddress } from "../net/ip.ts";
import { describeSet, findPool, type IpamConfig, type Pool, type RangeSet } from "./config.ts";
import { ownedBy, type Lease, type LeaseStore } from "./store.ts";

/** One address held for the request in a range set. */
export interface Allocation {
  setIndex: number;
  ip: IpAddress;
  pool: Pool;
  /** True when this call created the lease (false: an existing lease was reused). */
  created: boolean;
}

/** The pool of a set whose [rangeStart, rangeEnd] holds ip. */
export function poolFor(set: RangeSet, ip: IpAddress): Pool | undefined {
  return findPool([set], ip)?.pool;
}

/**
 * Candidates in host-local's order: from last+1 (when last lies in the set) or the first pool's rangeStart,
 * through each pool's range, wrapping to the next pool and round to the start; gateways are skipped.
 */
export function* candidates(set: RangeSet, last?: IpAddress): Generator<{ ip: IpAddress; pool: Pool }> {
  const sizes = set.map((p) => p.rangeEnd.value - p.rangeStart.value + 1n);
  let poolIdx = 0;
  let offset = 0n;
  const lastPool = last ? set.findIndex((p) => p === poolFor(set, last)) : -1;
  if (last && lastPool >= 0) {
    poolIdx = lastPool;
    offset = last.value - set[poolIdx]!.rangeStart.value + 1n;
    if (offset >= sizes[poolIdx]!) {
      poolIdx = (poolIdx + 1) % set.length;
      offset = 0n;
    }
  }
  const total = sizes.reduce((a, b) => a + b, 0n);
  for (let n = 0n; n < total; n++) {
    const pool = set[poolIdx]!;
    const ip = new IpAddress(pool.subnet.family, pool.rangeStart.value + offset);
    if (!ip.equals(pool.gateway)) yield { ip, pool };
    offset++;
    if (offset >= sizes[poolIdx]!) {
      poolIdx = (poolIdx + 1) % set.length;
      offset = 0n;
    }
  }
}

/** How many addresses a set can hand out (gateways inside a pool's range excluded). */
export function setCapacity(set: RangeSet): bigint {
  let n = 0n;
  for (const p of set) {
    n += p.rangeEnd.value - p.rangeStart.value + 1n;
    if (poolFor([p], p.gateway)) n -= 1n;
  }
  return n;
}

/** How many of the given leases occupy allocatable addresses of a set. */
export function setUsage(set: RangeSet, leases: readonly Lease[]): bigint {
  let n = 0n;
  for (const l of leases) {
    const p = poolFor(set, l.ip);
    if (p && !p.gateway.equals(l.ip)) n++;
  }
  return n;
}

/** Options of allocate(). */
export interface AllocateOptions {
  config: IpamConfig;
  store: LeaseStore;
  containerID: string;
  ifname: string;
}

function exhausted(setIndex: number, set: RangeSet): CniError {
  return new CniError(Code.RangeExhausted, `no IP addresses available in range set ${setIndex}: ${describeSet(set)}`);
}

async function allocateInSet(opts: AllocateOptions, setIndex: number, existing: readonly Lease[]): Promise<Allocation> {
  const { config, store, containerID, ifname } = opts;
  const set = config.rangeSets[setIndex]!;
  const mine = existing.find((l) => ownedBy(l.owner, containerID, ifname) && poolFor(set, l.ip));
  const requested = config.requested.find((r) => r.setIndex === setIndex);
  if (mine) {
    if (requested && !requested.ip.equals(mine.ip)) {
      throw new CniError(
        Code.AlreadyExists,
        `${containerID}/${ifname} already holds ${mine.ip} in range set ${setIndex}; cannot also take requested IP ${requested.ip} (${requested.field})`,
      );
    }
    return { setIndex, ip: mine.ip, pool: poolFor(set, mine.ip)!, created: false };
  }
  if (requested) {
    if (!(await store.reserve(requested.ip, containerID, ifname))) {
      const owner = await store.ownerOf(requested.ip);
      const who = owner ? ` (held by ${owner.containerID}${owner.ifname ? `/${owner.ifname}` : ""})` : "";
      throw new CniError(Code.AlreadyExists, `requested IP address ${requested.ip} (${requested.field}) is not available in range set ${setIndex}${who}`);
    }
    await store.setLastReserved(setIndex, requested.ip);
    return { setIndex, ip: requested.ip, pool: poolFor(set, requested.ip)!, created: true };
  }
  for (const c of candidates(set, await store.lastReserved(setIndex))) {
    if (await store.reserve(c.ip, containerID, ifname)) {
      await store.setLastReserved(setIndex, c.ip);
      return { setIndex, ip: c.ip, pool: c.pool, created: true };
    }
  }
  throw exhausted(setIndex, set);
}

/**
 * One address per range set for (containerID, ifname): an existing lease is reused, a requested IP is reserved
 * as asked, else round robin after last_reserved_ip. On failure the leases this call created are released.
 */
export async function allocate(opts: AllocateOptions): Promise<Allocation[]> {
  const existing = await opts.store.leases();
  const out: Allocation[] = [];
  try {
    for (let i = 0; i < opts.config.rangeSets.length; i++) out.push(await allocateInSet(opts, i, existing));
  } catch (e) {
    for (const a of out.filter((x) => x.created)) await opts.store.release(a.ip).catch(() => undefined);
    throw e;
  }
  return out;
}

/**
 * Removes the leases of (containerID, ifname); like host-local, old container-ID-only leases are removed only
 * when no exact match exists. Each file's owner is re-read just before unlinking. Returns the IPs freed.
 */
export async function releaseOwner(store: LeaseStore, containerID: string, ifname: string): Promise<IpAddress[]> {
  const leases = await store.leases();
  const exact = leases.filter((l) => ownedBy(l.owner, containerID, ifname));
  const chosen = exact.length ? exact : leases.filter((l) => ownedBy(l.owner, containerID, ifname, true));
  const freed: IpAddress[] = [];
  for (const l of chosen) {
    if (await store.removeIfOwned(l.path, (o) => ownedBy(o, containerID, ifname, true))) freed.push(l.ip);
  }
  return freed;
}
