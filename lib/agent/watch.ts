// Kubernetes watches of the agent: client-node 1.4.0 informers restarted with capped backoff after an error.
import { CoreV1Api, KubeConfig, ListWatch, Watch, type KubernetesObject, type V1Namespace, type V1Node, type V1Pod } from "@kubernetes/client-node";
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
    readonly path: string,
    listFn: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
    private readonly o: InformerOptions,
  ) {
    this.delay = o.minBackoffMs ?? 200;
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

/** The agent's two watches: Nodes and Namespaces. */
export interface ClusterWatch {
  nodes: RestartingInformer<V1Node>;
  namespaces: RestartingInformer<V1Namespace>;
  /** Both listed at least once. */
  readonly synced: boolean;
  /** Both listed and answering now (no failure since their last clean start). */
  readonly connected: boolean;
  /** Restarts of both after errors. */
  readonly restarts: number;
  stop(): Promise<void>;
}

/** Starts informers on Nodes and Namespaces; onChange on any event; errors are logged by onError. */
export function watchCluster(kc: KubeConfig, onChange: () => void, onError: (what: string, err: unknown, delayMs: number) => void): ClusterWatch {
  const core = kc.makeApiClient(CoreV1Api);
  const nodes = new RestartingInformer<V1Node>(kc, "/api/v1/nodes", () => core.listNode(), {
    onChange,
    onError: (e, d) => onError("nodes", e, d),
  });
  const namespaces = new RestartingInformer<V1Namespace>(kc, "/api/v1/namespaces", () => core.listNamespace(), {
    onChange,
    onError: (e, d) => onError("namespaces", e, d),
  });
  nodes.start();
  namespaces.start();
  return {
    nodes,
    namespaces,
    get synced() {
      return nodes.synced && namespaces.synced;
    },
    get connected() {
      return nodes.connected && namespaces.connected;
    },
    get restarts() {
      return nodes.restarts + namespaces.restarts;
    },
    stop: async () => {
      await Promise.all([nodes.stop(), namespaces.stop()]);
    },
  };
}

/** Starts an informer on the Pods of one node (field selector `spec.nodeName=<node>`), restarted like the others. */
export function watchNodePods(kc: KubeConfig, node: string, onChange: () => void, onError: (err: unknown, delayMs: number) => void): RestartingInformer<V1Pod> {
  const core = kc.makeApiClient(CoreV1Api);
  const fieldSelector = `spec.nodeName=${node}`;
  const pods = new RestartingInformer<V1Pod>(kc, "/api/v1/pods", () => core.listPodForAllNamespaces({ fieldSelector }), { onChange, onError, fieldSelector });
  pods.start();
  return pods;
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
