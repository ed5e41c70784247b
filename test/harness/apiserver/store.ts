// The fake API server's object store: objects per resource, one global resourceVersion counter, a bounded event history.
import { randomBytes, randomUUID } from "node:crypto";
import { ApiError, apiVersionOf, notFound, Reason, RESOURCES, type ResourceInfo, type ResourceName } from "./resources.ts";

/** A Kubernetes object as JSON (metadata always present once stored). */
export type KObject = Record<string, unknown> & { metadata: ObjectMeta };

/** The metadata fields the store reads or sets; everything else is kept as given. */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

/** Watch event types. */
export const EventType = { Added: "ADDED", Modified: "MODIFIED", Deleted: "DELETED", Bookmark: "BOOKMARK", Error: "ERROR" } as const;
/** One of EventType's values. */
export type EventTypeName = (typeof EventType)[keyof typeof EventType];

/** One change, as kept in the history. Objects carry kind and apiVersion. */
export interface StoreEvent {
  type: typeof EventType.Added | typeof EventType.Modified | typeof EventType.Deleted;
  resource: ResourceName;
  rv: number;
  object: KObject;
  /** The object before a MODIFIED or DELETED (watches with selectors turn MODIFIED into ADDED/DELETED with it). */
  previous?: KObject;
}

/** Options of Store. */
export interface StoreOptions {
  /** Events kept for watches from an older resourceVersion (default 1000); older ones answer 410 Expired. */
  historyLimit?: number;
}

/** Which part of an object an update writes (see ResourceInfo.status). */
export type UpdateScope = "main" | "status" | "all";

const key = (ns: string | undefined, name: string): string => `${ns ?? ""}/${name}`;
const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, "Z");

/** Objects per resource with etcd-like resourceVersions (decimal strings of one global counter). */
export class Store {
  private readonly objects = new Map<ResourceName, Map<string, KObject>>();
  private readonly history: StoreEvent[] = [];
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private revision = 1;
  /** Watches from an RV below this get 410 (events after it are all in the history). */
  private oldestWatchable = 1;
  private readonly historyLimit: number;

  constructor(opts: StoreOptions = {}) {
    this.historyLimit = opts.historyLimit ?? 1000;
  }

  /** The current resourceVersion (the last change's). */
  get resourceVersion(): string {
    return String(this.revision);
  }

  /** The object or undefined (a copy, with kind and apiVersion). */
  get(resource: ResourceName, name: string, namespace?: string): KObject | undefined {
    const o = this.table(resource).get(key(this.ns(resource, namespace), name));
    return o && structuredClone(o);
  }

  /** The objects of a resource (in one namespace, or all), sorted by namespace and name, with the list's resourceVersion. */
  list(resource: ResourceName, namespace?: string, filter: (o: KObject) => boolean = () => true): { items: KObject[]; resourceVersion: string } {
    const items = [...this.table(resource).entries()]
      .filter(([, o]) => (namespace === undefined || o.metadata.namespace === namespace) && filter(o))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => structuredClone(o));
    return { items, resourceVersion: this.resourceVersion };
  }

  /** Creates an object (409 AlreadyExists if present); sets uid, creationTimestamp, resourceVersion (and generation, defaults). */
  create(resource: ResourceName, input: Record<string, unknown>, namespace?: string): KObject {
    const obj = this.normalize(resource, input, namespace);
    const m = obj.metadata;
    if (!m.name && m.generateName) m.name = m.generateName + randomBytes(4).toString("hex").slice(0, 5);
    if (!m.name) throw new ApiError(422, Reason.Invalid, `${RESOURCES[resource].kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
    const k = key(m.namespace, m.name);
    if (this.table(resource).has(k)) throw new ApiError(409, Reason.AlreadyExists, `${resource} "${m.name}" already exists`, { name: m.name, kind: resource });
    m.uid = randomUUID();
    m.creationTimestamp = now();
    delete m.resourceVersion;
    if ((RESOURCES[resource] as ResourceInfo).generation) m.generation = 1;
    if (resource === "namespaces") {
      obj.spec = { finalizers: ["kubernetes"], ...(obj.spec as object | undefined) };
      obj.status = { phase: "Active", ...(obj.status as object | undefined) };
    }
    return this.commit(resource, k, obj, undefined);
  }

  /**
   * Replaces an object. A non-empty metadata.resourceVersion must match (409 Conflict). scope "main" keeps the
   * stored status of resources with a status subresource, "status" keeps everything but status, "all" takes all.
   * uid and creationTimestamp are kept from the stored object.
   */
  update(resource: ResourceName, input: Record<string, unknown>, namespace?: string, scope: UpdateScope = "main"): KObject {
    const obj = this.normalize(resource, input, namespace);
    const name = obj.metadata.name ?? "";
    const k = key(obj.metadata.namespace, name);
    const old = this.table(resource).get(k);
    if (!old) throw notFound(resource, name, RESOURCES[resource].group);
    const rv = obj.metadata.resourceVersion;
    if (rv && rv !== old.metadata.resourceVersion) {
      throw new ApiError(409, Reason.Conflict,
        `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, kind: resource });
    }
    let next: KObject = obj;
    const info: ResourceInfo = RESOURCES[resource];
    if (info.status && scope === "main") {
      next = { ...obj };
      if (old.status === undefined) delete next.status;
      else next.status = structuredClone(old.status);
    } else if (info.status && scope === "status") {
      next = { ...structuredClone(old), status: obj.status };
      if (obj.status === undefined) delete next.status;
      next.metadata = { ...next.metadata, labels: obj.metadata.labels, annotations: obj.metadata.annotations };
    }
    next.metadata.uid = old.metadata.uid;
    next.metadata.creationTimestamp = old.metadata.creationTimestamp;
    if (info.generation) {
      next.metadata.generation = (old.metadata.generation ?? 1) + (JSON.stringify(old.spec) !== JSON.stringify(next.spec) ? 1 : 0);
    }
    if (JSON.stringify({ ...next, metadata: { ...next.metadata, resourceVersion: "" } }) ===
      JSON.stringify({ ...old, metadata: { ...old.metadata, resourceVersion: "" } })) {
      return structuredClone(old); // a no-op write keeps the resourceVersion and sends no event, like the real server
    }
    return this.commit(resource, k, next, old);
  }

  /** Creates or replaces (all fields, no resourceVersion precondition): the test-control write. */
  upsert(resource: ResourceName, input: Record<string, unknown>): KObject {
    const obj = this.normalize(resource, input, undefined);
    const exists = obj.metadata.name !== undefined && this.table(resource).has(key(obj.metadata.namespace, obj.metadata.name));
    if (!exists) return this.create(resource, obj);
    delete obj.metadata.resourceVersion;
    return this.update(resource, obj, undefined, "all");
  }

  /** Deletes an object (404 if absent); the DELETED event's object carries the deletion's resourceVersion. Namespaces take their objects with them. */
  delete(resource: ResourceName, name: string, namespace?: string): KObject {
    const ns = this.ns(resource, namespace);
    const k = key(ns, name);
    const old = this.table(resource).get(k);
    if (!old) throw notFound(resource, name, RESOURCES[resource].group);
    if (resource === "namespaces") {
      for (const r of Object.keys(RESOURCES) as ResourceName[]) {
        if (!RESOURCES[r].namespaced) continue;
        for (const o of this.list(r, name).items) this.delete(r, o.metadata.name!, name);
      }
    }
    this.table(resource).delete(k);
    const gone = structuredClone(old);
    gone.metadata.resourceVersion = String(++this.revision);
    this.record({ type: EventType.Deleted, resource, rv: this.revision, object: gone, previous: old });
    return structuredClone(gone);
  }

  /** Drops the whole history: a watch from any resourceVersion before now gets 410 Expired. */
  compact(): void {
    this.history.length = 0;
    this.oldestWatchable = this.revision;
  }

  /** Events of resource after rv (exclusive), or "expired" when some of them are no longer kept. */
  eventsSince(resource: ResourceName, rv: number): StoreEvent[] | "expired" {
    if (rv < this.oldestWatchable) return "expired";
    return this.history.filter((e) => e.rv > rv && e.resource === resource);
  }

  /** The lowest resourceVersion a watch may start from (for 410 messages). */
  get oldestResourceVersion(): number {
    return this.oldestWatchable;
  }

  /** Calls listener on every change, synchronously after it is stored; returns the unsubscribe function. */
  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private table(resource: ResourceName): Map<string, KObject> {
    let t = this.objects.get(resource);
    if (!t) this.objects.set(resource, (t = new Map()));
    return t;
  }

  private ns(resource: ResourceName, namespace: string | undefined): string | undefined {
    return RESOURCES[resource].namespaced ? namespace ?? "default" : undefined;
  }

  /** A deep copy with kind/apiVersion set and the namespace checked (400 on a mismatch, dropped for cluster-scoped). */
  private normalize(resource: ResourceName, input: Record<string, unknown>, namespace: string | undefined): KObject {
    const obj = structuredClone(input) as KObject;
    obj.metadata = { ...(obj.metadata ?? {}) };
    const info: ResourceInfo = RESOURCES[resource];
    if (obj.kind !== undefined && obj.kind !== info.kind) {
      throw new ApiError(400, Reason.BadRequest, `the kind of the provided object (${String(obj.kind)}) does not match the resource ${resource}`);
    }
    const body = { kind: info.kind, apiVersion: apiVersionOf(resource), ...obj };
    body.kind = info.kind;
    body.apiVersion = apiVersionOf(resource);
    if (!info.namespaced) delete body.metadata.namespace;
    else {
      if (namespace && body.metadata.namespace && body.metadata.namespace !== namespace) {
        throw new ApiError(400, Reason.BadRequest, "the namespace of the provided object does not match the namespace sent on the request");
      }
      body.metadata.namespace = namespace ?? body.metadata.namespace ?? "default";
    }
    if (resource === "namespaces" && body.metadata.name) {
      body.metadata.labels = { ...body.metadata.labels, "kubernetes.io/metadata.name": body.metadata.name };
    }
    return body as KObject;
  }

  private commit(resource: ResourceName, k: string, obj: KObject, previous: KObject | undefined): KObject {
    obj.metadata.resourceVersion = String(++this.revision);
    this.table(resource).set(k, obj);
    this.record({ type: previous ? EventType.Modified : EventType.Added, resource, rv: this.revision, object: obj, ...(previous ? { previous } : {}) });
    return structuredClone(obj);
  }

  private record(e: StoreEvent): void {
    this.history.push(e);
    while (this.history.length > this.historyLimit) this.oldestWatchable = this.history.shift()!.rv;
    for (const l of [...this.listeners]) l(e);
  }
}
