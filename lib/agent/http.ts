// The agent's HTTP endpoint: /healthz, /readyz and Prometheus /metrics (prom-client, own registry).
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The agent's metrics in their own registry. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly peers = new Gauge({ name: "ovsplane_agent_peers", help: "Remote nodes with a pod range and an address (peer pod ranges)", registers: [this.registry] });
  readonly localPods = new Gauge({ name: "ovsplane_agent_local_pods", help: "Pod ports of the network on this node", registers: [this.registry] });
  readonly segments = new Gauge({ name: "ovsplane_agent_segments", help: "Distinct segments the Namespaces map to", registers: [this.registry] });
  readonly namespaces = new Gauge({ name: "ovsplane_agent_namespaces", help: "Namespaces in segments.json", registers: [this.registry] });
  readonly reconcileSeconds = new Histogram({
    name: "ovsplane_agent_reconcile_duration_seconds",
    help: "Duration of a full reconcile (files, bridge, flows, host state)",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({ name: "ovsplane_agent_reconcile_errors_total", help: "Reconciles that failed (retried)", registers: [this.registry] });
  readonly watchRestarts = new Counter({
    name: "ovsplane_agent_watch_restarts_total",
    help: "Kubernetes informers restarted after an error",
    labelNames: ["resource"] as const,
    registers: [this.registry],
  });
  readonly flowReplays = new Counter({ name: "ovsplane_agent_flow_replays_total", help: "Pod and segment flows written back because they were missing or different", registers: [this.registry] });
  readonly nodeFlowChanges = new Counter({ name: "ovsplane_agent_node_flow_changes_total", help: "Node-wide flows added, replaced or deleted", registers: [this.registry] });
  readonly gcRemovals = new Counter({ name: "ovsplane_gc_removals_total", help: "Attachments removed by the agent's GC (their pod is no longer on this node)", registers: [this.registry] });
  readonly podMoves = new Counter({ name: "ovsplane_agent_pod_moves_total", help: "Running pods moved to their namespace's new segment", registers: [this.registry] });
  readonly hostApplies = new Counter({ name: "ovsplane_agent_host_state_applies_total", help: "Times the host state (gateway, routes, iptables) was applied", registers: [this.registry] });
  readonly cniSeconds = new Histogram({
    name: "ovsplane_cni_duration_seconds",
    help: "Duration of the plugin's CNI calls on this node (from its call log)",
    labelNames: ["command", "result"] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
}

/** What the HTTP endpoint asks the agent. */
export interface HealthSource {
  /** Why the agent is not ready, or undefined when it is. */
  notReady(): string | undefined;
}

/** Splits `HOST:PORT` (IPv6 as `[::1]:9109`). */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new Error(`--listen ${JSON.stringify(s)}: expected HOST:PORT`);
  return { host: m[1] ?? m[2] ?? "", port };
}

/** Serves /healthz (alive), /readyz (synced once and OVS answers) and /metrics; resolves once listening. */
export function serveHttp(listen: string, metrics: AgentMetrics, health: HealthSource): Promise<Server> {
  const { host, port } = parseListen(listen);
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const text = (code: number, body: string, type = "text/plain; charset=utf-8") => {
      res.writeHead(code, { "Content-Type": type });
      res.end(body);
    };
    if (path === "/healthz") return text(200, "ok\n");
    if (path === "/readyz") {
      const why = health.notReady();
      return why ? text(503, `not ready: ${why}\n`) : text(200, "ok\n");
    }
    if (path === "/metrics") {
      metrics.registry.metrics().then((m) => text(200, m, metrics.registry.contentType), (e: unknown) => text(500, String(e)));
      return;
    }
    text(404, "not found\n");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host || undefined, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
