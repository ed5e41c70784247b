// The agent's loop: Kubernetes and OVSDB events into one debounced reconcile (files, bridge, flows, host state), plus a periodic flow check.
import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import { messageOf } from "../cni/errors.ts";
import { trace } from "../host/exec.ts";
import { gatewayMac } from "../dataplane/names.ts";
import { watchOvsdb, type OvsdbSession } from "../ovs/ovsdb-monitor.ts";
import type { OvsplaneConfig } from "../plugin/config.ts";
import { SegmentsWriter, writeConflist } from "./files.ts";
import { AgentMetrics, serveHttp } from "./http.ts";
import { LogFollower, parseCallLine } from "./cnilog.ts";
import { clearFlowRestoreWait, releaseFlowRestoreWait } from "./restorewait.ts";
import { logFileOf } from "../plugin/calllog.ts";
import { agentConflist, networkConfig, nodeFacts, peersOf, segmentMap, type NodeFacts } from "./model.ts";
import { nodeFlowsPresent, reconcileOvs } from "./ovs.ts";
import { PolicyCompiler, policyMetrics, PolicyWatch } from "./policy.ts";
import { ServiceCompiler, ServiceWatch } from "./services.ts";
import { ClusterWatch, describeWatchError, loadKubeConfig, watchNodePods, type RestartingInformer } from "./watch.ts";
import { PodCollector } from "./collect.ts";
import { relabelPods } from "./relabel.ts";
import { OvsConnections } from "./conns.ts";
import type { V1Pod } from "@kubernetes/client-node";

/** What the agent is started with (the command line). */
export interface AgentOptions {
  /** Kubeconfig file; none = the in-cluster config. */
  kubeconfig?: string;
  nodeName: string;
  /** The conflist template (node facts are filled in). */
  confFile: string;
  cniConfDir: string;
  stateDir: string;
  /** `HOST:PORT` of /healthz, /readyz, /metrics. */
  listen: string;
  /** Quiet time before a reconcile after an event (default 50 ms). */
  debounceMs?: number;
  /** Period of the cheap flow check (default 500 ms: a flush is repaired well within 2 s). */
  checkIntervalMs?: number;
  /** Delay before retrying a failed reconcile (default 1000 ms). */
  retryMs?: number;
  /** How long an attachment stays without its Pod on this node before GC removes it (default 30 s). */
  gcGraceMs?: number;
  /** Period of the GC pass (default a quarter of the grace period, 250 ms .. 10 s). */
  gcIntervalMs?: number;
  log?: (line: string) => void;
}

const OVSDB_TABLES = {
  Bridge: { columns: ["name", "ports"] },
  Port: { columns: ["name", "interfaces", "external_ids"] },
  Interface: { columns: ["name", "ofport"] },
} as const;

/** One running agent. */
export class Agent {
  readonly metrics = new AgentMetrics();
  private readonly template: Record<string, unknown>;
  /** The template's own settings (bridge, sockets, segment, global segments), before node facts. */
  private readonly base: OvsplaneConfig;
  private readonly segments: SegmentsWriter;
  private cluster?: ClusterWatch;
  /** NetworkPolicies and all Pods, and the node's policy flows compiled from them (policy.ts). */
  private policyWatch?: PolicyWatch;
  /** Services and EndpointSlices, and the node's Service flows compiled from them (services.ts). */
  private serviceWatch?: ServiceWatch;
  private readonly services = new ServiceCompiler();
  readonly policy: PolicyCompiler;
  private session?: OvsdbSession;
  private server?: Server;
  /** Follows the plugin's call log (the conflist's logFile) for ovsplane_cni_duration_seconds. */
  private follower?: LogFollower;
  /** flow-restore-wait was set true by this agent after its flows were written (see restorewait.ts). */
  private restoreWaitArmed = false;
  private timer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  /** This node's Pods (field selector spec.nodeName), for GC. */
  private pods?: RestartingInformer<V1Pod>;
  private gcTimer: NodeJS.Timeout | undefined;
  private collector?: PodCollector;
  /** The conflist last written (GC builds its DEL requests from it). */
  private conflist?: Record<string, unknown>;
  private running = false;
  private dirty = false;
  private stopped = false;
  private checking = false;
  private waitingSaid = "";
  /** What the last OVS reconcile ran with (for the periodic check). */
  private applied?: { cfg: OvsplaneConfig; ofports: { tunnel: number; gateway: number } };
  private readonly log: (line: string) => void;
  /** The OVSDB and OpenFlow connections reconciles reuse. */
  private readonly conns = new OvsConnections();
  /** When the last reconcile ended (an event after a quiet time is applied at once). */
  private lastRunEnd = 0;

  constructor(readonly o: AgentOptions) {
    this.log = o.log ?? ((l) => process.stderr.write(`${new Date().toISOString()} ovsplane-agent: ${l}\n`));
    this.template = JSON.parse(readFileSync(o.confFile, "utf8")) as Record<string, unknown>;
    this.base = networkConfig(this.template);
    this.segments = new SegmentsWriter(o.stateDir);
    this.policy = new PolicyCompiler(o.stateDir);
    policyMetrics(this.metrics.registry, this.policy, () => this.applied?.cfg.ofSocket);
  }

  /** Starts the watches, the HTTP endpoint and the periodic check. */
  async start(): Promise<void> {
    // A switch left waiting by an agent that died would stay dark (an underlay bridge on it too, so no API to
    // list): forward now with whatever table it has; the first reconcile arms flow-restore-wait again.
    await clearFlowRestoreWait(this.base.ovsdbSocket).catch((e: unknown) => this.log(`cannot clear flow-restore-wait: ${messageOf(e)}`));
    this.server = await serveHttp(this.o.listen, this.metrics, { notReady: () => this.notReady() });
    const kc = loadKubeConfig(this.o.kubeconfig);
    this.policyWatch = new PolicyWatch(kc, () => this.trigger(), (what, err, delay) => {
      this.metrics.watchRestarts.inc({ resource: what });
      this.log(`watch of ${what} failed (${describeWatchError(err)}); restarting in ${delay} ms`);
    });
    this.serviceWatch = new ServiceWatch(kc, () => this.trigger(), (what, err, delay) => {
      this.metrics.watchRestarts.inc({ resource: what });
      this.log(`watch of ${what} failed (${describeWatchError(err)}); restarting in ${delay} ms`);
    });
    this.cluster = new ClusterWatch(kc, () => this.trigger(), (what, err, delay) => {
      this.metrics.watchRestarts.inc({ resource: what });
      this.log(`watch of ${what} failed (${describeWatchError(err)}); restarting in ${delay} ms`);
    });
    this.session = watchOvsdb(this.base.ovsdbSocket, OVSDB_TABLES, {
      connected: ({ reconnect }) => {
        if (reconnect) this.log(`OVSDB at ${this.base.ovsdbSocket} reconnected`);
        this.trigger();
      },
      disconnected: (why) => this.log(`OVSDB at ${this.base.ovsdbSocket} lost: ${why.message}`),
      added: () => this.trigger(),
      changed: () => this.trigger(),
      removed: () => this.trigger(),
      error: () => undefined, // reconnect attempts: /readyz tells
    }, { maxBackoffMs: 2000 });
    this.checkTimer = setInterval(() => void this.check(), this.o.checkIntervalMs ?? 500);
    this.startGc(kc);
    this.log(`started for node ${this.o.nodeName}; listening on ${this.o.listen}`);
  }

  /** Why the agent is not ready (undefined: ready). */
  notReady(): string | undefined {
    if (!this.cluster?.synced) return "the Kubernetes API has not been listed yet";
    if (!this.cluster.connected) return "the Kubernetes API does not answer (retrying with backoff)";
    if (!this.session?.connected) return `OVSDB at ${this.base.ovsdbSocket} does not answer`;
    return undefined;
  }

  /** Stops everything it started. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.checkTimer);
    clearInterval(this.gcTimer);
    await this.pods?.stop();
    this.follower?.stop();
    this.session?.close();
    this.conns.reset();
    if (this.restoreWaitArmed && this.applied) await clearFlowRestoreWait(this.applied.cfg.ovsdbSocket).catch(() => undefined);
    await this.cluster?.stop();
    await this.policyWatch?.stop();
    await this.serviceWatch?.stop();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /**
   * Asks for a reconcile: at once (next turn of the event loop, so a burst delivered together is one
   * reconcile) when none ran for the debounce time, else after it. One runs at a time; events meanwhile
   * ask for one more.
   */
  trigger(delayMs?: number): void {
    if (this.stopped) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    if (this.timer) return;
    const debounce = this.o.debounceMs ?? 50;
    const delay = delayMs ?? (performance.now() - this.lastRunEnd >= debounce ? 0 : debounce);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runOnce();
    }, delay);
  }

  private async runOnce(): Promise<void> {
    this.running = true;
    this.dirty = false;
    const end = this.metrics.reconcileSeconds.startTimer();
    let retry = false;
    try {
      const did = await this.reconcile();
      const secs = end();
      if (did) this.log(`reconciled in ${(secs * 1000).toFixed(1)} ms: ${did}`);
    } catch (e) {
      end();
      retry = true;
      this.conns.reset(); // the next attempt reconnects
      this.metrics.reconcileErrors.inc();
      this.log(`reconcile failed: ${messageOf(e)}`);
    } finally {
      this.running = false;
      this.lastRunEnd = performance.now();
    }
    if (this.dirty) this.trigger();
    else if (retry) this.trigger(this.o.retryMs ?? 1000);
  }

  /** One reconcile; returns what changed (empty when nothing did). */
  private async reconcile(): Promise<string> {
    const cluster = this.cluster;
    if (!cluster?.synced) return "";
    const nodes = cluster.nodes.list();
    const own = nodes.find((n) => n.metadata?.name === this.o.nodeName);
    const self: NodeFacts = own ? nodeFacts(own) : { name: this.o.nodeName, podCIDRs: [] };
    const peers = peersOf(nodes, this.o.nodeName);
    trace(`agent: ${peers.length} peers of ${nodes.length} Nodes`);
    const changed: string[] = [];
    const segs = segmentMap(cluster.namespaces.list(), this.base);
    if (this.segments.write(segs)) changed.push(`segments.json generation ${this.segments.generation}`);
    this.metrics.namespaces.set(Object.keys(segs).length);
    this.metrics.segments.set(new Set(Object.values(segs)).size);
    this.metrics.peers.set(peers.length);
    const conflist = agentConflist(this.template, self, this.o.stateDir);
    if (!conflist) {
      const why = !own ? `no Node ${this.o.nodeName}` : !self.podCIDRs.length ? `Node ${this.o.nodeName} has no IPv4 pod range` : `Node ${this.o.nodeName} has no address`;
      if (why !== this.waitingSaid) this.log(`waiting: ${why}`);
      this.waitingSaid = why;
      return changed.join(", ");
    }
    this.waitingSaid = "";
    if (writeConflist(this.o.cniConfDir, conflist)) changed.push(`conflist written (${self.podCIDRs[0]}, ${self.address})`);
    const cfg = networkConfig(conflist);
    trace("agent: conflist and segments written");
    this.followCallLog(logFileOf({ logFile: cfg.logFile }));
    const policy = (ports: Parameters<PolicyCompiler["want"]>[3]) => this.policy.want(this.policyWatch, cluster.namespaces.list(), cfg.name, ports);
    const services = (ports: Parameters<ServiceCompiler["want"]>[1]) => this.services.want(this.serviceWatch, ports);
    const out = await reconcileOvs({ cfg, self, peers, policy, services }, this.conns);
    this.applied = { cfg, ofports: out.ofports };
    if (out.restored || !this.restoreWaitArmed) {
      // A restarted ovs-vswitchd waiting for these flows forwards now (a Node event's changes need no release).
      await releaseFlowRestoreWait(await this.conns.ovsdb(cfg.ovsdbSocket));
      this.restoreWaitArmed = true;
    }
    this.conflist = conflist;
    trace("agent: OVS reconciled");
    const relabel = await relabelPods(cfg, segs, out.ofports.gateway, this.conns);
    if (relabel.moved.length) {
      this.metrics.podMoves.inc(relabel.moved.length);
      changed.push(`moved ${relabel.moved.map((m) => `${m.port.attachment.podNamespace}/${m.port.attachment.podName} ${m.from}->${m.to}`).join(", ")}`);
    }
    trace("agent: relabel pass done");
    if (relabel.deferred) this.dirty = true; // an ADD in flight: move it once its flows are written
    this.metrics.localPods.set(out.pods);
    this.metrics.flowReplays.inc(out.podReplays);
    this.metrics.nodeFlowChanges.inc(out.nodeChanges);
    if (out.nodeChanges) changed.push(`${out.nodeChanges} node-wide flow changes`);
    if (out.podReplays) changed.push(`${out.podReplays} pod flows replayed`);
    if (out.policyChanges) changed.push(`${out.policyChanges} policy flow changes`);
    if (out.serviceChanges) changed.push(`${out.serviceChanges} Service flow changes`);
    if (out.hostApplied) {
      this.metrics.hostApplies.inc();
      changed.push(`host state applied (${peers.length} peer ranges)`);
    }
    return changed.join(", ");
  }

  /** Follows the plugin's call log at file (from its end), or stops following when there is none. */
  private followCallLog(file: string | undefined): void {
    if (!file) {
      this.follower?.stop();
      this.follower = undefined;
    } else if (!this.follower) {
      this.follower = new LogFollower(file, (line) => {
        const s = parseCallLine(line);
        if (s) this.metrics.cniSeconds.observe({ command: s.command, result: s.result }, s.seconds);
      });
      this.follower.start();
    } else this.follower.setFile(file);
  }

  /** Starts the Pod informer of this node and the periodic GC pass. */
  private startGc(kc: ReturnType<typeof loadKubeConfig>): void {
    const graceMs = this.o.gcGraceMs ?? 30_000;
    this.pods = watchNodePods(kc, this.o.nodeName, () => undefined, (err, delay) => {
      this.metrics.watchRestarts.inc({ resource: "pods" });
      this.log(`watch of pods failed (${describeWatchError(err)}); restarting in ${delay} ms`);
    });
    const pods = this.pods;
    this.collector = new PodCollector({
      conflist: () => this.conflist,
      pods: () => ({ synced: pods.connected, list: pods.list() }),
      graceMs,
      cniPath: (process.env.CNI_PATH ?? "/opt/cni/bin").split(":").filter(Boolean),
      log: this.log,
    });
    this.gcTimer = setInterval(() => void this.gc(), this.o.gcIntervalMs ?? Math.min(Math.max(graceMs / 4, 250), 10_000));
  }

  /** One GC pass, never while a reconcile runs or is due (events meanwhile ask for one after it). */
  private async gc(): Promise<void> {
    if (!this.collector || this.running || this.timer || this.stopped) return;
    this.running = true;
    try {
      const removed = await this.collector.runOnce();
      this.metrics.gcRemovals.inc(removed.length);
    } catch (e) {
      this.log(`GC pass failed: ${messageOf(e)}`);
    } finally {
      this.running = false;
    }
    if (this.dirty) this.trigger();
  }

  /** The periodic check: a full reconcile when the pipeline defaults are gone from the bridge (flush, restart). */
  private async check(): Promise<void> {
    const a = this.applied;
    if (!a || this.running || this.checking || this.timer) return;
    this.checking = true;
    try {
      const ok = await nodeFlowsPresent(a.cfg.ofSocket, { ...a.ofports, gatewayMAC: gatewayMac(a.cfg.bridge) });
      if (!ok) {
        this.log("node-wide flows missing on the bridge: reconciling");
        this.trigger(0);
      }
    } catch (e) {
      this.log(`flow check failed: ${messageOf(e)}`);
      this.trigger(this.o.retryMs ?? 1000);
    } finally {
      this.checking = false;
    }
  }
}
