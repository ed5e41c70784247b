// LinkOps over rtnetlink in-process (Bun executable): the veth, addresses, routes, alias and TX checksum without a subprocess.
import { CniError, Code } from "../../cni/errors.ts";
import type { AddrJson, LinkOps, RouteJson } from "../links.ts";
import { NetlinkError } from "./codec.ts";
import { parseBatchLine } from "./batch.ts";
import { delAddr, delLink, delRoute, dumpAddrs, dumpLinks, dumpRoutes, getLink, type LinkInfo, newAddr, newRoute, newVeth, parseAddr, parseLink, parseRoute, RTM, setLink } from "./rtnl.ts";
import { closeFd, NetlinkSocket, openFd, txChecksumOff } from "./socket.ts";

const ENODEV = 19;
const AF_INET = 2;
const RT_TABLE_MAIN = 254;

let own: NetlinkSocket | undefined;
/** The socket of this process's netns, opened once. */
const here = () => (own ??= NetlinkSocket.open());

/** A NetlinkError as a CniError naming the operation, errno and where; anything else as it is. */
const cniOf = (e: unknown): unknown => (e instanceof NetlinkError ? new CniError(Code.StepFailed, e.message, "", { cause: e }) : e);

/** Runs a netlink step; a NetlinkError becomes a CniError (cniOf). */
function step<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw cniOf(e);
  }
}

/** Runs `fn` with a socket opened in the netns at nsPath (closed after), or with this netns's socket. */
function inPod<T>(nsPath: string | undefined, fn: (s: NetlinkSocket) => T): T {
  if (!nsPath) return fn(here());
  const s = NetlinkSocket.open(nsPath);
  try {
    return fn(s);
  } finally {
    s.close();
  }
}

/** A link by name, or undefined when the netns has none of that name. */
function linkByName(s: NetlinkSocket, name: string): LinkInfo | undefined {
  const r = s.request((seq) => getLink(seq, name), `reading link ${name}`);
  if (r.errno === ENODEV) return undefined;
  if (r.errno) throw new NetlinkError(r.errno, `reading link ${name}`, s.where, r.extAck);
  const m = r.items.find((i) => i.type === RTM.NEWLINK);
  return m ? parseLink(m) : undefined;
}

/** `A.B.C.D/len` as `ip -j route` prints a destination. */
const ipDst = (dst: string) => (dst === "0.0.0.0/0" ? "default" : dst.replace(/\/32$/, ""));

/** IPv4 addresses of a netns by link index, in `ip -j`'s addr_info shape. */
function addrsByIndex(s: NetlinkSocket, index = 0): Map<number, NonNullable<AddrJson["addr_info"]>> {
  const out = new Map<number, NonNullable<AddrJson["addr_info"]>>();
  for (const a of s.call((seq) => dumpAddrs(seq, index), "listing addresses").map(parseAddr)) {
    if (a.family !== AF_INET || (index && a.index !== index)) continue;
    out.set(a.index, [...(out.get(a.index) ?? []), { family: "inet", local: a.local, prefixlen: a.prefixlen }]);
  }
  return out;
}

/** The rtnetlink implementation of LinkOps. */
export const netlinkLinks: LinkOps = {
  kind: "netlink",
  async createPodVeth(v) {
    step(() => {
      const nsFd = openFd(v.netns);
      try {
        // The peer is created straight in the pod's netns (IFLA_NET_NS_FD): nothing of the pod's end is ever here.
        here().call(
          (seq) => newVeth(seq, { name: v.hostName, mac: v.hostMac, mtu: v.mtu, peer: { name: v.ifname, mac: v.mac, mtu: v.mtu }, peerNetnsFd: nsFd }),
          `creating veth ${v.hostName} (peer ${v.ifname} into ${v.netns})`,
        );
      } finally {
        closeFd(nsFd);
      }
      // The kernel ignores IFLA_IFALIAS on creation: the tag is set right after.
      here().call((seq) => setLink(seq, { name: v.hostName }, { alias: v.alias }), `setting the alias of ${v.hostName}`);
      inPod(v.netns, (pod) => {
        const link = linkByName(pod, v.ifname);
        if (!link) throw new NetlinkError(ENODEV, `finding the new veth end ${v.ifname}`, v.netns);
        for (const address of v.addresses) pod.call((seq) => newAddr(seq, { index: link.index, address }), `adding address ${address} to ${v.ifname}`);
        pod.call((seq) => setLink(seq, { index: link.index }, { up: true }), `setting ${v.ifname} up`);
        for (const r of v.routes) {
          pod.call((seq) => newRoute(seq, { dst: r.dst, oif: link.index, ...(r.gw ? { gateway: r.gw } : {}), ...(r.mtu ? { mtu: r.mtu } : {}) }), `adding route ${r.dst} to ${v.ifname}`);
        }
      });
      if (v.txOff) txChecksumOff(v.netns, v.ifname);
    });
  },
  async setUp(name) {
    step(() => here().call((seq) => setLink(seq, { name }, { up: true }), `setting ${name} up`));
  },
  async deleteLink(name) {
    // The kernel takes 13–35 ms to delete a veth: sent from a pool thread (requestAsync) while this one
    // goes on (DEL cleans OVS meanwhile), on a socket of its own so that nothing else reads its answer.
    const op = `deleting link ${name}`;
    const s = step(() => NetlinkSocket.open());
    try {
      const r = await s.requestAsync((seq) => delLink(seq, { name }), op);
      if (r.errno === ENODEV) return false;
      if (r.errno) throw new NetlinkError(r.errno, op, s.where, r.extAck);
      return true;
    } catch (e) {
      throw cniOf(e);
    } finally {
      s.close();
    }
  },
  async interfaceOf(ifname, nsPath) {
    return step(() =>
      inPod(nsPath, (s) => {
        const l = linkByName(s, ifname);
        if (!l) return undefined;
        return { ifname: l.name, ...(l.mac ? { address: l.mac } : {}), ...(l.mtu ? { mtu: l.mtu } : {}), addr_info: addrsByIndex(s, l.index).get(l.index) ?? [] };
      }),
    );
  },
  async podRoutes(nsPath, ifname) {
    return step(() =>
      inPod(nsPath, (s) => {
        const l = linkByName(s, ifname);
        if (!l) throw new NetlinkError(ENODEV, `reading link ${ifname}`, nsPath);
        const routes = s.call((seq) => dumpRoutes(seq, { oif: l.index }), `listing routes of ${ifname}`).flatMap((m) => parseRoute(m) ?? []);
        return routes
          .filter((r) => r.oif === l.index && r.table === RT_TABLE_MAIN)
          .map((r): RouteJson => ({ dst: ipDst(r.dst), ...(r.gateway ? { gateway: r.gateway } : {}), dev: ifname, protocol: r.protocol, ...(r.metric !== undefined ? { metric: r.metric } : {}) }));
      }),
    );
  },
  async routesByProtocol(protocol) {
    return step(() => {
      const s = here();
      const names = new Map(s.call((seq) => dumpLinks(seq), "listing links").map(parseLink).map((l) => [l.index, l.name]));
      return s
        .call((seq) => dumpRoutes(seq, { protocol }), `listing routes of protocol ${protocol}`)
        .flatMap((m) => parseRoute(m) ?? [])
        .filter((r) => r.protocol === protocol && r.table === RT_TABLE_MAIN)
        .map((r): RouteJson => ({ dst: ipDst(r.dst), ...(r.oif ? { dev: names.get(r.oif) ?? `if${r.oif}` } : {}), protocol: r.protocol, ...(r.metric !== undefined ? { metric: r.metric } : {}) }));
    });
  },
  async hostBatch(lines) {
    step(() => {
      const s = here();
      const ops = lines.map(parseBatchLine); // all read before the first change
      const index = new Map<string, number>();
      const indexOf = (dev: string) => {
        if (!index.has(dev)) {
          const l = linkByName(s, dev);
          if (!l) throw new NetlinkError(ENODEV, `finding link ${dev}`, s.where);
          index.set(dev, l.index);
        }
        return index.get(dev)!;
      };
      for (const [i, o] of ops.entries()) {
        const what = `host state: ${lines[i]}`;
        if (o.op === "link-up") s.call((seq) => setLink(seq, { index: indexOf(o.dev) }, { up: true }), what);
        else if (o.op === "addr") {
          const a = { index: indexOf(o.dev), address: o.address };
          s.call((seq) => (o.action === "del" ? delAddr(seq, a) : newAddr(seq, { ...a, replace: true })), what);
        } else if (o.action === "del") {
          if (o.protocol === undefined || o.metric === undefined) throw new Error(`${what}: a route is removed by its proto and metric`);
          const r = { dst: o.dst, oif: indexOf(o.dev), protocol: o.protocol, metric: o.metric };
          s.call((seq) => delRoute(seq, r), what);
        } else {
          const r = { dst: o.dst, oif: indexOf(o.dev), ...(o.src ? { prefsrc: o.src } : {}), ...(o.protocol !== undefined ? { protocol: o.protocol } : {}), ...(o.metric !== undefined ? { metric: o.metric } : {}) };
          s.call((seq) => newRoute(seq, { ...r, replace: true }), what);
        }
      }
    });
  },
  async veths() {
    return step(() =>
      here()
        .call((seq) => dumpLinks(seq, "veth"), "listing veths")
        .map(parseLink)
        .filter((l) => l.kind === "veth")
        .map((l) => ({ ifname: l.name, ...(l.alias ? { ifalias: l.alias } : {}) })),
    );
  },
  async ipv4Links() {
    return step(() => {
      const addrs = addrsByIndex(here());
      return here()
        .call((seq) => dumpLinks(seq), "listing links")
        .map(parseLink)
        .flatMap((l) => (addrs.has(l.index) ? [{ ifname: l.name, mtu: l.mtu ?? 0, addr_info: addrs.get(l.index)! }] : []));
    });
  },
};
