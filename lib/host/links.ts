// Kernel links, addresses and routes behind one interface: rtnetlink in-process (Bun executable) or `ip` subprocesses (Node).
import { messageOf } from "../cni/errors.ts";
import type { Route } from "../cni/types.ts";
import { settings } from "../settings.ts";
import { run, trace } from "./exec.ts";
import { ipBatch, ipJson, ownNetnsPath } from "./netns.ts";

/** A pod's veth pair: the pod end `ifname` in `netns` with its addresses and routes, the host end here. */
export interface PodVethSpec {
  netns: string;
  ifname: string;
  mac: string;
  hostName: string;
  hostMac: string;
  mtu: number;
  /** IFLA_IFALIAS of the host end (the attachment's tag, found again by GC). */
  alias: string;
  /** `A.B.C.D/len`, on the pod end. */
  addresses: readonly string[];
  routes: readonly Route[];
  /** Turn TX checksum offload off on the pod end (the userspace datapath needs it). */
  txOff: boolean;
}

/** A link with its IPv4 addresses, in `ip -j addr show`'s shape. */
export interface AddrJson {
  ifname: string;
  address?: string;
  mtu?: number;
  ifalias?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** A route in `ip -j route show`'s shape (`default` for 0.0.0.0/0, no `/32`). */
export interface RouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string | number;
  metric?: number;
}

/** What ovsplane does to the node's and pods' kernel links. */
export interface LinkOps {
  /** Which implementation this is. */
  readonly kind: "netlink" | "ip";
  /** Creates the veth pair, the pod end configured and up, the host end tagged with its alias (down). */
  createPodVeth(s: PodVethSpec): Promise<void>;
  /** Sets a link of this netns up. */
  setUp(name: string): Promise<void>;
  /**
   * Deletes a link of this netns (a veth takes its peer along); false when it did not exist. The kernel's
   * work (13–35 ms for a veth) is done off the JavaScript thread, so the caller's other work overlaps it.
   */
  deleteLink(name: string): Promise<boolean>;
  /** A link with its IPv4 addresses, of the netns at nsPath (else this one); undefined when it does not exist. */
  interfaceOf(ifname: string, nsPath?: string): Promise<AddrJson | undefined>;
  /** The main table's IPv4 routes through a link of the netns at nsPath. */
  podRoutes(nsPath: string, ifname: string): Promise<RouteJson[]>;
  /** The veths of this netns with their aliases. */
  veths(): Promise<{ ifname: string; ifalias?: string }[]>;
  /** The main table's IPv4 routes of one protocol in this netns (`ip -j route show proto P`). */
  routesByProtocol(protocol: number): Promise<RouteJson[]>;
  /** Runs host state lines in this netns, of the forms dataplane/hoststate.ts writes (`ip -batch`; netlink: netlink/batch.ts). */
  hostBatch(lines: readonly string[]): Promise<void>;
  /** Every link of this netns with its IPv4 addresses (`ip -j -4 addr show`). */
  ipv4Links(): Promise<(AddrJson & { mtu: number })[]>;
}

/** `ip -batch` lines run inside the pod's netns: the veth (host end sent to our netns), addresses, routes. */
export function podVethLines(s: Omit<PodVethSpec, "netns" | "alias" | "txOff">, ownNetns: string): string[] {
  return [
    `link add ${s.ifname} address ${s.mac} mtu ${s.mtu} type veth peer name ${s.hostName} address ${s.hostMac} mtu ${s.mtu} netns ${ownNetns}`,
    ...s.addresses.map((a) => `addr add ${a} dev ${s.ifname}`),
    `link set ${s.ifname} up`,
    ...s.routes.map((r) => `route add ${r.dst}${r.gw ? ` via ${r.gw}` : ""} dev ${s.ifname}${r.mtu ? ` mtu ${r.mtu}` : ""}`),
  ];
}

const missing = (e: unknown) => /does not exist|Cannot find device/i.test(messageOf(e));

/** The development runtime's implementation: iproute2 (and ethtool) subprocesses through host/exec.ts. */
export const ipLinks: LinkOps = {
  kind: "ip",
  async createPodVeth(s) {
    // From the pod's netns, tag the host end (back in our netns) so GC finds it even after a crash.
    const then: string[][] = [["nsenter", `--net=${ownNetnsPath()}`, "ip", "link", "set", s.hostName, "alias", s.alias]];
    if (s.txOff) then.push(["ethtool", "-K", s.ifname, "tx", "off"]);
    await ipBatch(podVethLines(s, ownNetnsPath()), { nsPath: s.netns, then });
  },
  async setUp(name) {
    await ipBatch([`link set ${name} up`]);
  },
  async deleteLink(name) {
    const r = await run(["ip", "link", "del", name], { allowFail: true });
    if (r.code === 0) return true;
    if (missing(r.stderr)) return false;
    throw new Error(`ip link del ${name}: ${r.stderr.trim()}`);
  },
  async interfaceOf(ifname, nsPath) {
    try {
      return (await ipJson<AddrJson[]>(["addr", "show", "dev", ifname], nsPath))[0];
    } catch (e) {
      if (missing(e)) return undefined;
      throw e;
    }
  },
  podRoutes: (nsPath, ifname) => ipJson<RouteJson[]>(["route", "show", "dev", ifname], nsPath),
  routesByProtocol: (protocol) => ipJson<RouteJson[]>(["route", "show", "proto", String(protocol)]),
  async hostBatch(lines) {
    if (lines.length) await ipBatch(lines);
  },
  veths: () => ipJson<{ ifname: string; ifalias?: string }[]>(["link", "show", "type", "veth"]),
  ipv4Links: () => ipJson<(AddrJson & { mtu: number })[]>(["-4", "addr", "show"]),
};

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** The OVSPLANE_TRACE step logged when the netlink edge (and so bun:ffi) starts loading: the tests look for it. */
export const NETLINK_LOADING = "netlink: loading";
let chosen: Promise<LinkOps> | undefined;

/**
 * The implementation in force: netlink in the Bun executable (bun:ffi is loaded only there), `ip`
 * subprocesses under Node or with OVSPLANE_IP_EXEC=1.
 */
export function links(): Promise<LinkOps> {
  return (chosen ??= isBun && !settings.ipExec ? (trace(NETLINK_LOADING), import("./netlink/links.ts").then((m) => (trace("netlink: loaded"), m.netlinkLinks))) : Promise.resolve(ipLinks));
}
