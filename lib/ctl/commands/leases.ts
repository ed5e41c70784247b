// ovsplanectl leases: per network and range, addresses used and free; each lease with its container, stale ones marked.
import type { Argv } from "yargs";
import type { Pool } from "../../ipam/config.ts";
import type { Lease } from "../../ipam/store.ts";
import { bridgeKey, loadNetworks, nodeFlags, readBridges, readLeases, selectNetworks, type NetworkLeases, type PortState } from "../node-state.ts";
import { guardAsync, report, mark, paint, table, type Out } from "../output.ts";

/** One range (pool) of a network with its counts. */
export interface RangeRow {
  /** Index of the range set it belongs to. */
  set: number;
  subnet: string;
  rangeStart: string;
  rangeEnd: string;
  gateway: string;
  /** Addresses handed out from this range (the gateway excluded). */
  size: number;
  used: number;
  free: number;
}

/** One lease file with its owner and whether that owner still has a port. */
export interface LeaseRow {
  ip: string;
  /** The subnet of the range it falls in, undefined when it is outside every range (left by an old config). */
  range?: string;
  containerID?: string;
  ifname?: string;
  /** The owner's OVS port (host veth), when it has one. */
  port?: string;
  /** True when no port of the network holds this attachment (or the file is empty); null when OVSDB could not be read. */
  stale: boolean | null;
  file: string;
}

/** What `leases --json` prints per network. */
export interface NetworkLeaseReport {
  network: string;
  dir?: string;
  error?: string;
  ranges: RangeRow[];
  leases: LeaseRow[];
}

const inPool = (p: Pool, l: Lease) => l.ip.family === p.subnet.family && l.ip.value >= p.rangeStart.value && l.ip.value <= p.rangeEnd.value;

/** The ranges with their counts and the leases with their staleness; `ports` undefined when OVSDB was not readable (pure). */
export function leaseReport(nl: NetworkLeases, ports: readonly PortState[] | undefined): NetworkLeaseReport {
  const r: NetworkLeaseReport = { network: nl.network, ranges: [], leases: [] };
  if (nl.dir) r.dir = nl.dir;
  if (nl.error) r.error = nl.error;
  nl.pools.forEach((set, i) => {
    for (const p of set) {
      const gwInside = p.gateway.value >= p.rangeStart.value && p.gateway.value <= p.rangeEnd.value;
      const size = Number(p.rangeEnd.value - p.rangeStart.value + 1n) - (gwInside ? 1 : 0);
      const used = nl.leases.filter((l) => inPool(p, l) && !l.ip.equals(p.gateway)).length;
      const subnet = `${p.subnet.network}/${p.subnet.prefix}`;
      r.ranges.push({ set: i, subnet, rangeStart: p.rangeStart.toString(), rangeEnd: p.rangeEnd.toString(), gateway: p.gateway.toString(), size, used, free: size - used });
    }
  });
  for (const l of nl.leases) {
    const row: LeaseRow = { ip: l.ip.toString(), stale: null, file: l.path };
    const pool = nl.pools.flat().find((p) => inPool(p, l));
    if (pool) row.range = `${pool.subnet.network}/${pool.subnet.prefix}`;
    if (l.owner) {
      row.containerID = l.owner.containerID;
      if (l.owner.ifname) row.ifname = l.owner.ifname;
    }
    if (ports) {
      const a = l.owner;
      const p = a && ports.find((x) => x.attachment?.network === nl.network && x.attachment.containerID === a.containerID && (a.ifname ?? x.attachment.ifname) === x.attachment.ifname);
      if (p) row.port = p.name;
      row.stale = !p;
    }
    r.leases.push(row);
  }
  return r;
}

/** Reads the selected networks' leases and their bridges' ports. */
export async function collectLeases(f: { confDir: string; network?: string }): Promise<NetworkLeaseReport[]> {
  const networks = selectNetworks(loadNetworks(f.confDir).networks, f.network);
  const bridges = await readBridges(networks);
  const out: NetworkLeaseReport[] = [];
  for (const n of networks) {
    const b = bridges.get(bridgeKey(n.cfg));
    out.push(leaseReport(await readLeases(n), b?.ovsdb.ok ? b.ports : undefined));
  }
  return out;
}

/** Prints lease reports for people. */
export function printLeases(out: Out, reports: readonly NetworkLeaseReport[]): void {
  reports.forEach((r, i) => {
    if (i) out.line();
    out.line(`network ${r.network}${r.dir ? ` (${r.dir})` : ""}`);
    if (r.error) return out.line(paint(out, "bad", `  cannot read leases: ${r.error}`));
    table(out, ["RANGE", "FROM", "TO", "GATEWAY", "USED", "FREE"], r.ranges.map((g) => [g.subnet, g.rangeStart, g.rangeEnd, g.gateway, String(g.used), String(g.free)]));
    if (!r.leases.length) return out.line("no leases");
    out.line();
    table(
      out,
      ["IP", "CONTAINER", "IFNAME", "PORT", "STATE"],
      r.leases.map((l) => [
        l.ip,
        l.containerID ?? "(empty file)",
        l.ifname ?? "-",
        l.port ?? "-",
        l.stale === null ? "?" : mark(out, !l.stale, "in use", "STALE"),
      ]),
    );
    const outside = r.leases.filter((l) => !l.range).length;
    if (outside) out.line(paint(out, "warn", `${outside} lease(s) outside every configured range`));
  });
}

function builder(y: Argv<object>) {
  return nodeFlags(y)
    .example("$0 leases", "used and free addresses, stale leases marked")
    .example("$0 leases --network podnet --json", "one network's leases as JSON");
}

/** The `leases` command. */
export const leasesCommand = {
  command: "leases",
  describe: "show the IPAM leases per network and range, marking those whose container has no port (changes nothing)",
  builder,
  handler: (a: Awaited<ReturnType<typeof builder>["argv"]>) =>
    guardAsync(async () => {
      const reports = await collectLeases(a);
      report(a.json, { networks: reports }, (out) => printLeases(out, reports));
    }),
};
