// Kubernetes watches of the agent: client-node 1.4.0 informers restarted with capped backoff after an error.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { KubeConfig, ListWatch, Watch, type KubernetesObject, type V1Namespace, type V1Node, type V1Pod } from "@kubernetes/client-node";
import { messageOf } from "../cni/errors.ts";

/** Options of a RestartingInformer. */
export interface InformerOptions {
  /** First restart delay (default 200 ms), doubled after each failure up to maxBackoffMs. */
  minBackoffMs?: number;
  /** Largest restart delay (default 5000 ms). */
  maxBackoffMs?: number;
  /** Any add, update or delete (also the initial list's adds, and a relist's). */
  onChange(): void;
  /** The informer failed and will be restarted after delayMs. */
  onError?(err: unknown, delayMs: number): void;
  /** A field selector for the watch (the list function must apply it too). */
  fieldSelector?: string;
}

/** The next restart delay after a failure: doubled, capped (pure). */
export function nextBackoff(current: number, min: number, max: number): number {
  return Math.min(Math.max(current * 2, min), max);
}

/**
 * One informer (list, then watch) that never stays stopped: client-node 1.4.0 relists by itself after
 * a 410, but after any other error (connection refused, stream cut) it emits `error` and stops; this
 * starts it again after a delay that doubles up to a cap and resets once a list succeeds.
 */
export class RestartingInformer<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private listed = false;
  private errors = 0;
  /** Failed since the last clean start (list or watch refused, stream cut). */
  private down = false;
  /** How many times the informer was restarted after an error. */
  restarts = 0;

  constructor(
    kc: KubeConfig,
    /** The collection's API path (e.g. `/api/v1/nodes`): listed, then watched. */
    readonly path: string,
    private readonly o: InformerOptions,
  ) {
    this.delay = o.minBackoffMs ?? 200;
    const listFn = () => listJson<T>(kc, path, { fieldSelector: o.fieldSelector });
    this.lw = new ListWatch<T>(path, new Watch(kc), listFn as never, false, undefined, o.fieldSelector);
    for (const verb of ["add", "update", "delete"] as const) this.lw.on(verb, () => o.onChange());
    this.lw.on("error", (err: unknown) => this.failed(err));
  }

  /** Starts listing and watching. */
  start(): void {
    void this.run();
  }

  /** True once a list has succeeded (the cache reflects the API at least once). */
  get synced(): boolean {
    return this.listed;
  }

  /** Listed, and no failure since the last clean start: the API answers. */
  get connected(): boolean {
    return this.listed && !this.down;
  }

  /** The cached objects. */
  list(): readonly T[] {
    return this.lw.list();
  }

  /** Stops for good. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.lw.stop();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const errors = this.errors;
    try {
      await this.lw.start();
    } catch (e) {
      return this.failed(e);
    }
    // A refused list or watch is reported (error event) before start() resolves: only a clean start resets the backoff.
    if (this.errors === errors && this.lw.latestResourceVersion()) {
      if (!this.listed) this.o.onChange(); // an empty first list fires no add: tell the agent it is synced
      this.listed = true;
      this.down = false;
      this.delay = this.o.minBackoffMs ?? 200;
    }
  }

  private failed(err: unknown): void {
    this.errors++;
    this.down = true;
    if (this.stopped || this.timer) return;
    const delay = this.delay;
    this.delay = nextBackoff(this.delay, this.o.minBackoffMs ?? 200, this.o.maxBackoffMs ?? 5000);
    this.o.onError?.(err, delay);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.restarts++;
      void this.run();
    }, delay);
  }
}

/**
 * Informers whose caches are read together (Nodes and Namespaces; a policy's or a Service's inputs): each started as it is
 * added, synced once all have listed; `generation` counts their events, so an unchanged one needs no look
 * at the caches.
 */
export class InformerGroup {
  /** Bumped by every event of any member. */
  generation = 0;
  private readonly members: RestartingInformer<KubernetesObject>[] = [];

  constructor(
    private readonly kc: KubeConfig,
    private readonly changed: () => void,
    private readonly onError: (what: string, err: unknown, delayMs: number) => void,
  ) {}

  /** Adds and starts an informer on the collection at path; `what` names it in errors. */
  protected watch<T extends KubernetesObject>(path: string, what: string): RestartingInformer<T> {
    const onChange = () => {
      this.generation++;
      this.changed();
    };
    const i = new RestartingInformer<T>(this.kc, path, { onChange, onError: (e, d) => this.onError(what, e, d) });
    this.members.push(i as unknown as RestartingInformer<KubernetesObject>);
    i.start();
    return i;
  }

  /** Every member listed at least once: before that, what the group feeds is left as it is (an agent restart opens nothing). */
  get synced(): boolean {
    return this.members.every((m) => m.synced);
  }

  /** Every member listed and answering now (no failure since its last clean start). */
  get connected(): boolean {
    return this.members.every((m) => m.connected);
  }

  /** Restarts of the members after errors. */
  get restarts(): number {
    return this.members.reduce((n, m) => n + m.restarts, 0);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
  }
}

/** The agent's cluster watches: Nodes and Namespaces. */
export class ClusterWatch extends InformerGroup {
  readonly nodes = this.watch<V1Node>("/api/v1/nodes", "nodes");
  readonly namespaces = this.watch<V1Namespace>("/api/v1/namespaces", "namespaces");
}

/** Starts an informer on the Pods of one node (field selector `spec.nodeName=<node>`), restarted like the others. */
export function watchNodePods(kc: KubeConfig, node: string, onChange: () => void, onError: (err: unknown, delayMs: number) => void): RestartingInformer<V1Pod> {
  const fieldSelector = `spec.nodeName=${node}`;
  const pods = new RestartingInformer<V1Pod>(kc, "/api/v1/pods", { onChange, onError, fieldSelector });
  pods.start();
  return pods;
}

/** An API error: the HTTP status as `statusCode` (as client-node's Watch reports it), the Status message as the message. */
export class ApiStatusError extends Error {
  constructor(readonly statusCode: number, message: string) {
    super(message);
    this.name = "ApiStatusError";
  }
}

/**
 * One list of a collection as plain JSON, the shape the watch delivers too. With the same transport
 * client-node's Watch uses (kc's agent: CA, client certificate; its headers: bearer token), but no
 * generated API class: those pull all of client-node's ~900 models and their serializer into the agent
 * (~1.5 MB of JavaScript, ~35 MiB of RSS once parsed).
 */
export async function listJson<T>(kc: KubeConfig, path: string, query: Readonly<Record<string, string | undefined>> = {}, timeoutMs = 30_000): Promise<{ items: T[]; metadata?: { resourceVersion?: string } }> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  const url = new URL(cluster.server.replace(/\/$/, "") + path);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
  const init = (await kc.applyToFetchOptions({})) as { agent?: unknown; headers?: Headers };
  const headers: Record<string, string> = { accept: "application/json" };
  init.headers?.forEach((v, k) => (headers[k] = v));
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "GET", headers, agent: init.agent as never, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d));
      res.on("error", reject);
      res.on("end", () => {
        let json: { message?: string; items?: T[]; metadata?: { resourceVersion?: string } } | undefined;
        try {
          json = JSON.parse(body) as typeof json;
        } catch {
          json = undefined;
        }
        const code = res.statusCode ?? 0;
        if (code !== 200 || !json) return reject(new ApiStatusError(code, `list ${path}: ${json?.message ?? (res.statusMessage || `HTTP ${code}`)}`));
        resolve({ items: json.items ?? [], metadata: json.metadata });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`list ${path}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** A KubeConfig from a file, or the in-cluster one when no file is given. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromCluster();
  return kc;
}

/** One line for a watch error. */
export function describeWatchError(err: unknown): string {
  const code = (err as { statusCode?: number; code?: number | string })?.statusCode ?? (err as { code?: unknown })?.code;
  return code !== undefined ? `${messageOf(err)} (${String(code)})` : messageOf(err);
}
