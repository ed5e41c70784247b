// ADD: veth into the pod, OVS port with tags, segment flows; everything undone if a step fails.
import { alreadyExists, CniError, Code, invalidConfig, invalidEnv, messageOf, stepFailed, tryAgainLater } from "../cni/errors.ts";
import { warn } from "../cni/stdio.ts";
import { trace } from "../host/exec.ts";
import { links } from "../host/links.ts";
import { linkExistsHere, netnsExists } from "../host/netns.ts";
import { connect, type OvsdbClient } from "../ovs/ovsdb.ts";
import { applyFlows, EarlySwitch } from "../node/flows.ts";
import { EXACT_MASK, podCookie } from "../dataplane/pipeline.ts";
import type { CniRequest, Result } from "../cni/types.ts";
import { parseConfig, segmentOf } from "./config.ts";
import { withPeersFile } from "./peersfile.ts";
import { delegateIpam } from "./delegate.ts";
import { attachmentId, hostVethName, isMac, macFrom, randomMac, vethAlias } from "../dataplane/names.ts";
import { bridgeIds, deletePorts, ensureNode, findPort, preflight } from "../node/bridge.ts";
import { encodeTags } from "../dataplane/attachment.ts";
import { applyStaticFlows } from "./staticflows.ts";
import { hostSpec, nodeSpec, podAddressing, podRoutes, staticModel } from "./plan.ts";
import { applyHostState, hostKey, isApplied } from "../node/host.ts";
import { calls } from "./calllog.ts";
import { underlay } from "../host/underlay.ts";
import { OVS_TIMEOUT_MS, SWITCH_WAIT_MS, withLock } from "../node/lock.ts";
import { agentSegmentOf } from "./segments.ts";
import { podFlows, segmentFlows } from "../dataplane/builders.ts";

/** A step of the rollback; an `early` one is started when the rollback begins (and awaited in its turn). */
type Undo = { what: string; fn: () => Promise<unknown>; early?: boolean };

/** The CNI ADD of ovsplane. */
export async function add(req: CniRequest): Promise<Result> {
  calls.step("checking OVS");
  const cfg = parseConfig(withPeersFile(req.conf));
  // Agent mode: the namespace's segment as the agent reported it (code 11 before any side effect when not yet).
  const segment = cfg.agent ? agentSegmentOf(req, cfg, cfg.agent) : segmentOf(req, cfg);
  const hostName = hostVethName(req.containerID, req.ifname);
  const requestedMac = (req.conf.runtimeConfig as { mac?: unknown } | undefined)?.mac;
  if (requestedMac !== undefined && !isMac(requestedMac)) throw invalidConfig("runtimeConfig.mac", requestedMac, "not a MAC address");
  if (!netnsExists(req.netns)) throw invalidEnv("CNI_NETNS", req.netns, "no such network namespace");
  if (linkExistsHere(hostName)) throw alreadyExists(`interface ${req.ifname} of container ${req.containerID} (host veth ${hostName})`);
  trace("config parsed");
  const client = await connect(cfg.ovsdbSocket, { timeoutMs: OVS_TIMEOUT_MS });
  trace("OVSDB connected");
  const undo: Undo[] = [];
  let sw: EarlySwitch | undefined;
  let step = "checking OVS";
  /** Names the step a failure will be reported in (and traces it). */
  const at = (s: string) => (calls.step(s), trace((step = s)));
  try {
    const found = await preflight(client, hostName, cfg.bridge);
    if (found.port) throw alreadyExists(`OVS port ${hostName} of container ${req.containerID}/${req.ifname}`);
    // The flows' OpenFlow connection is also the check that ovs-vswitchd answers, before any side effect
    // (on a fresh node it opens once the bridge is there).
    if (found.bridge) {
      sw = new EarlySwitch(cfg.ofSocket, OVS_TIMEOUT_MS);
      await sw.ready().catch((e) => {
        throw tryAgainLater("ovs-vswitchd", `bridge ${cfg.bridge} does not answer on ${cfg.ofSocket}: ${messageOf(e)}`, e);
      });
    }
    at("IPAM");
    const ipam = await delegateIpam(req, "ADD");
    undo.push({ what: "IPAM", fn: () => delegateIpam(req, "DEL") });
    const addr = podAddressing(ipam!);
    at("reading the underlay");
    const { localIP, mtu } = await underlay(cfg);
    at("creating the veth pair");
    const mac = (requestedMac as string | undefined) ?? randomMac();
    const hostMac = macFrom(`host/${req.containerID}/${req.ifname}`);
    const kernel = await links();
    // The kernel's 13–35 ms of deleting it (off this thread) overlap the rollback's OVS steps.
    undo.push({ what: "veth", fn: () => kernel.deleteLink(hostName), early: true });
    const routes = podRoutes(addr, cfg);
    // The userspace datapath needs TX checksum offload off, or TCP hangs while ping works.
    // The host end is tagged with its alias so GC finds it even after a crash.
    const alias = vethAlias(cfg.name, req.containerID, req.ifname);
    const addresses = addr.ips.map((i) => i.address);
    await kernel.createPodVeth({ netns: req.netns, ifname: req.ifname, mac, hostName, hostMac, mtu, alias, addresses, routes, txOff: cfg.datapathType === "netdev" });
    at("adding the OVS port");
    const podId = attachmentId(cfg.name, req.containerID, req.ifname);
    const node = nodeSpec(cfg, localIP);
    const tags = encodeTags({
      network: cfg.name,
      containerID: req.containerID,
      ifname: req.ifname,
      netns: req.netns,
      segment,
      ips: addr.ips.map((i) => i.address),
      mac,
      ...(req.args.K8S_POD_NAMESPACE ? { podNamespace: req.args.K8S_POD_NAMESPACE } : {}),
      ...(req.args.K8S_POD_NAME ? { podName: req.args.K8S_POD_NAME } : {}),
      ...(req.args.OVSPLANE_SEGMENT !== undefined ? { segmentPinned: true } : {}),
    });
    undo.push({ what: "OVS port", fn: () => removePortByName(client, hostName) });
    const ofports = await ensureNode(client, node, { name: hostName, externalIds: tags }, SWITCH_WAIT_MS);
    const bridgeSwitch = (sw ??= new EarlySwitch(cfg.ofSocket));
    at(cfg.agent ? "programming flows" : "programming flows and the node's host state");
    undo.push({ what: "flows", fn: () => applyFlows(cfg.ofSocket, [{ op: "delete", cookie: podCookie(podId), mask: EXACT_MASK }]) });
    const model = staticModel(cfg, node, ofports, addr.gatewayIP);
    const pod = { id: podId, port: ofports.pod!, ip: addr.ipv4, mac, segment };
    const hostUp = () => kernel.setUp(hostName);
    if (cfg.agent) {
      // Agent mode: node-wide flows and host state are the agent's; one bundle writes the pod's segment
      // flow and its own flows, nothing is read back, and the veth comes up at once (the raw guard is the agent's).
      const ops = [...segmentFlows(segment), ...podFlows(pod, model.ports)].map((flow) => ({ op: "add" as const, flow }));
      await Promise.all([hostUp(), withLock(client, cfg.bridge, () => bridgeSwitch.use((s) => s.apply(ops)))]);
    } else {
      // Static mode: this network's node-wide flows are trusted while their fingerprint on the bridge holds
      // (else read back and only their differences written), in one bundle with the pod's segment flow and
      // its own flows; its host state (gateway address, routes, masquerade, raw guard) is rewritten only
      // when its fingerprint changed.
      const host = hostSpec(cfg, addr);
      // With the raw guard in place the pod's veth may come up at once; else only after the guard is applied.
      const early = isApplied(host, found.bridgeIds) ? hostUp() : undefined;
      await Promise.all([
        early,
        withLock(client, cfg.bridge, () => {
          const ids = bridgeIds(client, cfg.bridge);
          return Promise.all([
            bridgeSwitch.use(async (s) => applyStaticFlows({ client, sw: s, cfg, model, pod, ids: await ids })),
            ids.then((ids) => (isApplied(host, ids) ? undefined : applyHostState(client, cfg.bridge, host, ids[hostKey(cfg.name)]))),
          ]);
        }),
      ]);
      if (!early) await hostUp();
    }
    trace("done");
    return {
      cniVersion: req.conf.cniVersion,
      interfaces: [{ name: hostName, mac: hostMac }, { name: req.ifname, mac, mtu, sandbox: req.netns }],
      ips: addr.ips.map((i) => ({ ...i, interface: 1 })),
      routes,
      dns: ipam!.dns ?? {},
    };
  } catch (err) {
    await rollback(undo);
    if (err instanceof CniError && (err.code === Code.TryAgainLater || err.code === Code.AlreadyExists || err.code === Code.InvalidConfig)) {
      throw new CniError(err.code, `ADD ${step}: ${err.message}`, err.details, { cause: err });
    }
    throw stepFailed(`ADD ${step}`, err);
  } finally {
    client.close();
    sw?.close();
  }
}

/** Undoes the steps in reverse order, the early ones started first; a failed one is reported and passed. */
async function rollback(undo: readonly Undo[]): Promise<void> {
  const started = new Map<Undo, Promise<unknown>>();
  for (const u of undo.filter((x) => x.early)) {
    const p = u.fn();
    p.catch(() => undefined); // reported in its turn below
    started.set(u, p);
  }
  for (const u of [...undo].reverse()) {
    try {
      await (started.get(u) ?? u.fn());
    } catch (e) {
      warn(`ovsplane: rollback of ${u.what} failed: ${messageOf(e)}\n`);
    }
  }
}

async function removePortByName(client: OvsdbClient, name: string): Promise<void> {
  const p = await findPort(client, name);
  if (p) await deletePorts(client, [p.uuid]);
}
