// The integration testbed: simulated nodes (netns + own OVS), an underlay between them, pods, and teardown.
import { bootNode, newNode, SimNode, type NodeOptions } from "./node.ts";
import { SimPod } from "./pod.ts";
import { run } from "../../lib/host/exec.ts";
import { addNetns, delNetns, RUN_PREFIX, sleep, uniqueNsName } from "./netns.ts";

export { SimNode, type NodeOptions } from "./node.ts";
export { SimPod, type TcpListener, type TcpConnectResult } from "./pod.ts";
export { runPlugin, runDriver, DRIVER_BIN, REPO_ROOT, type PluginResult, type RunPluginOptions, type RunDriverOptions } from "./plugin.ts";
export { sweepLeftovers, pidAlive, RUN_ID, RUN_PREFIX, TEST_PREFIX, sleep } from "./netns.ts";

/** Options of Testbed.attachVethPod (plumbing a pod by hand, without a CNI plugin). */
export interface VethPodOptions {
  /** OVS bridge on the node to plug the host end into (e.g. "br-int"). */
  bridge: string;
  /** Pod address with prefix length, e.g. "10.244.1.2/24". */
  address: string;
  /** Optional default gateway inside the pod. */
  gateway?: string;
  /** Host-side interface name (<= 15 chars; default "v" + a counter). */
  hostIf?: string;
  /** Pod-side interface name (default "eth0"). */
  ifname?: string;
  /** MTU of both ends (default 1450, leaving room for VXLAN). */
  mtu?: number;
}

/**
 * Everything one test file creates, recorded so that teardownAll() removes it, even after failures.
 * Underlay: each connected node has a veth cable to a Linux bridge `sw0` in a shared switch netns
 * (`ovsp-t<run>-underlay`) and the testbed.md br-phy recipe on its side, so any number of nodes share
 * 198.18.0.0/24 without loops.
 */
export class Testbed {
  /** Nodes created so far. */
  readonly nodes: SimNode[] = [];
  /** Pods created so far. */
  readonly pods: SimPod[] = [];
  private switchNs?: string;
  private cables = 0;
  private vethCount = 0;

  /** Creates a node: netns, ip_forward, private run dir, ovsdb-server + ovs-vswitchd inside it. */
  async createNode(opts: NodeOptions & { prefix?: string }): Promise<SimNode> {
    const ns = uniqueNsName(opts.name, opts.prefix);
    const node = newNode(ns, opts, RUN_PREFIX);
    this.nodes.push(node);
    await bootNode(node);
    return node;
  }

  /** Creates a pod: a fresh netns with lo up. */
  async createPod(name: string): Promise<SimPod> {
    const pod = new SimPod(name, uniqueNsName(`p-${name}`));
    this.pods.push(pod);
    await addNetns(pod.netns);
    return pod;
  }

  /** The underlay switch's netns (created on first use): a Linux bridge `sw0` that every node's `ul0` cable joins. */
  async underlaySwitch(): Promise<string> {
    if (this.switchNs) return this.switchNs;
    const ns = uniqueNsName("underlay");
    this.switchNs = ns;
    await addNetns(ns);
    await run0(ns, ["link", "add", "sw0", "type", "bridge"]);
    await run0(ns, ["link", "set", "sw0", "up"]);
    return ns;
  }

  /** Joins node to the underlay (idempotent): cable `ul0` -> switch, br-phy (netdev) with ul0, address on br-phy. */
  async attachUnderlay(node: SimNode): Promise<void> {
    if (node.underlayConnected) return;
    const sw = await this.underlaySwitch();
    const peer = `n${++this.cables}`;
    await node.exec(["ip", "link", "add", "ul0", "type", "veth", "peer", "name", peer, "netns", sw]);
    await run0(sw, ["link", "set", peer, "master", "sw0"]);
    await run0(sw, ["link", "set", peer, "up"]);
    await node.vsctl("--may-exist", "add-br", node.underlayBridge, "--", "set", "bridge", node.underlayBridge,
      "datapath_type=netdev", "--", "--may-exist", "add-port", node.underlayBridge, "ul0");
    await node.exec(["ip", "link", "set", "ul0", "up"]);
    node.underlayConnected = true;
    await node.configureUnderlayAddress();
  }

  /**
   * Connects two nodes over the underlay (both join the shared underlay switch) and checks that
   * their underlay addresses ping each other (a few tries). Throws if they do not.
   */
  async connectNodes(a: SimNode, b: SimNode): Promise<void> {
    await this.attachUnderlay(a);
    await this.attachUnderlay(b);
    for (const [x, y] of [[a, b], [b, a]] as const) {
      let ok = false;
      for (let i = 0; i < 10 && !ok; i++) {
        ok = (await x.exec(["ping", "-n", "-q", "-c", "1", "-W", "1", y.underlayIP], { allowFail: true, timeoutMs: 5000 })).code === 0;
        if (!ok) await sleep(200);
      }
      if (!ok) throw new Error(`underlay: ${x.name} (${x.underlayIP}) cannot ping ${y.name} (${y.underlayIP})`);
    }
  }

  /**
   * Plugs pod into an OVS bridge of node by hand (what a CNI plugin would do): a veth with
   * `ifname` in the pod and `hostIf` on the node, the address (+ default route), MTU, all up.
   * Returns the host-side interface name.
   */
  async attachVethPod(node: SimNode, pod: SimPod, o: VethPodOptions): Promise<string> {
    const hostIf = o.hostIf ?? `v${++this.vethCount}`;
    const ifname = o.ifname ?? "eth0";
    const mtu = String(o.mtu ?? 1450);
    await node.exec(["ip", "link", "add", hostIf, "mtu", mtu, "type", "veth", "peer", "name", ifname, "mtu", mtu, "netns", pod.netns]);
    await node.exec(["ip", "link", "set", hostIf, "up"]);
    await pod.exec(["ip", "addr", "add", o.address, "dev", ifname]);
    await pod.exec(["ip", "link", "set", ifname, "up"]);
    if (o.gateway) await pod.exec(["ip", "route", "add", "default", "via", o.gateway, "dev", ifname]);
    await node.vsctl("add-port", o.bridge, hostIf);
    return hostIf;
  }

  /**
   * Removes everything this testbed created: daemons (by pidfile), every process in its namespaces,
   * the namespaces, the run dirs. Tolerates partial state; safe to call twice.
   */
  async teardownAll(): Promise<void> {
    const pods = this.pods.splice(0);
    const nodes = this.nodes.splice(0);
    await Promise.all(pods.map((p) => p.destroy()));
    await Promise.all(nodes.map((n) => n.destroy()));
    if (this.switchNs) await delNetns(this.switchNs).catch(() => undefined);
    this.switchNs = undefined;
  }
}

async function run0(ns: string, args: string[]): Promise<void> {
  await run(["ip", "-n", ns, ...args]);
}

/** The default testbed of this process; the free functions below use it. */
export const testbed = new Testbed();

/** Creates a node on the default testbed (see Testbed.createNode). */
export const createNode = (opts: NodeOptions & { prefix?: string }): Promise<SimNode> => testbed.createNode(opts);
/** Creates a pod on the default testbed (see Testbed.createPod). */
export const createPod = (name: string): Promise<SimPod> => testbed.createPod(name);
/** Connects two nodes of the default testbed over the underlay (see Testbed.connectNodes). */
export const connectNodes = (a: SimNode, b: SimNode): Promise<void> => testbed.connectNodes(a, b);
/** Plugs a pod into a bridge by hand on the default testbed (see Testbed.attachVethPod). */
export const attachVethPod = (node: SimNode, pod: SimPod, o: VethPodOptions): Promise<string> => testbed.attachVethPod(node, pod, o);
/** Tears down the default testbed (see Testbed.teardownAll). */
export const teardownAll = (): Promise<void> => testbed.teardownAll();

let signalsHooked = false;
/** On SIGINT/SIGTERM (e.g. a per-file timeout), tear the default testbed down before exiting. */
export function teardownOnSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      void testbed.teardownAll().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
    });
  }
}
teardownOnSignals();
