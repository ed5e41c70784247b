// The fake kube-apiserver: HTTPS with its own CA, bearer-token auth, discovery, list/get/watch/create/replace/patch/delete, test controls.
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { kubeconfig, makeCerts, type ServerCerts } from "./certs.ts";
import {
  ApiError, apiGroup, apiGroupList, apiVersions, isResource, OPENAPI_V2, OPENAPI_V2_PROTOBUF, openapiV2Protobuf, Reason, RESOURCES, resourceList, SERVER_VERSION, type ResourceName,
} from "./resources.ts";
import { jsonPatch, mergePatch, parseFieldSelector, parseLabelSelector } from "./selectors.ts";
import { Store, type KObject } from "./store.ts";
import { serveWatch, type ActiveWatch } from "./watch.ts";

/** Options of ApiServer.create. */
export interface ApiServerOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: any free one, kept across stop()/start()). */
  port?: number;
  /** Address written into the kubeconfig and the certificate (default host, or 127.0.0.1 when host is 0.0.0.0). */
  advertise?: string;
  /** Where ca.crt, server.*, token and kubeconfig are written (default a new /tmp dir). */
  dir?: string;
  /** Bearer token clients must send (default random). */
  token?: string;
  /** Events kept for watches (default 1000). */
  historyLimit?: number;
  /** Interval of BOOKMARK events on watches that allow them (default 1000 ms; the real server: about a minute). */
  bookmarkIntervalMs?: number;
  /** Watches without timeoutSeconds end after a random time in [t, 2t] seconds, like --min-request-timeout (default 1800). */
  minRequestTimeoutSeconds?: number;
}

/** One request served, for debugging and assertions. */
export interface RequestRecord {
  method: string;
  url: string;
  status: number;
}

/** A route into the resource tree: `/api/v1[/namespaces/NS]/RES[/NAME[/SUB]]`. */
interface Target {
  resource: ResourceName;
  namespace?: string;
  name?: string;
  sub?: string;
  watchPath: boolean;
}

const JSON_TYPE = { "Content-Type": "application/json", "Cache-Control": "no-cache, private" } as const;

/**
 * A kube-apiserver stand-in over HTTPS (HTTP/1.1, JSON only). Matched: discovery, NodeList-style lists whose items lack
 * kind, objects with kind in get and watch, Status bodies, watch semantics (see serveWatch), field/label selectors,
 * resourceVersion preconditions, status subresources. Approximated: `limit`/`continue` ignored (whole lists), list
 * `resourceVersion` ignored (always current), strategic merge patch treated as a JSON merge patch, no server-side
 * apply, `dryRun` ignored, no Table output (kubectl falls back to NAME/AGE), deletes immediate (no graceful
 * termination, namespaces take their objects at once), no admission (pods in absent namespaces accepted), no defaults
 * beyond namespaces' name label, finalizer and phase, no managedFields.
 */
export class ApiServer {
  /** The objects; tests may read it, writes should go through upsert/remove. */
  readonly store: Store;
  /** Requests served, oldest first (the last 10000). */
  readonly requests: RequestRecord[] = [];
  private server?: Server;
  private readonly watches = new Set<ActiveWatch>();
  private port: number;

  private constructor(
    private readonly opts: ApiServerOptions,
    readonly dir: string,
    readonly token: string,
    private readonly certs: ServerCerts,
    readonly advertise: string,
  ) {
    this.store = new Store({ historyLimit: opts.historyLimit ?? 1000 });
    this.port = opts.port ?? 0;
  }

  /** Makes the CA, the server certificate and the token in dir; listens; writes the kubeconfig (after the port is known). */
  static async start(opts: ApiServerOptions = {}): Promise<ApiServer> {
    const host = opts.host ?? "127.0.0.1";
    const advertise = opts.advertise ?? (host === "0.0.0.0" ? "127.0.0.1" : host);
    const dir = opts.dir ?? mkdtempSync("/tmp/ovsp-apiserver-");
    const token = opts.token ?? randomBytes(16).toString("hex");
    const certs = await makeCerts(dir, [advertise, ...(host === "0.0.0.0" ? [] : [host])]);
    writeFileSync(join(dir, "token"), token + "\n", { mode: 0o600 });
    const s = new ApiServer(opts, dir, token, certs, advertise);
    await s.start();
    writeFileSync(s.kubeconfigPath, kubeconfig({ server: s.url, ca: certs.ca, token }), { mode: 0o600 });
    return s;
  }

  /** `https://ADVERTISE:PORT`. */
  get url(): string {
    return `https://${this.advertise}:${this.port}`;
  }
  /** The CA certificate clients trust. */
  get caFile(): string {
    return this.certs.caFile;
  }
  /** The kubeconfig for kubectl and @kubernetes/client-node. */
  get kubeconfigPath(): string {
    return join(this.dir, "kubeconfig");
  }
  /** The port (fixed after the first start). */
  get listenPort(): number {
    return this.port;
  }
  /** True while listening. */
  get running(): boolean {
    return this.server !== undefined;
  }

  /** Listens (again, on the same port after stop()). */
  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer({ cert: this.certs.cert, key: this.certs.key }, (req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, this.opts.host ?? "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** An outage: stops listening, cuts every watch and connection. The store is kept; start() serves it again. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of [...this.watches]) w.end(true);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  /** Creates or replaces an object (all fields, status included; no resourceVersion check) and returns it as stored. */
  upsert(resource: ResourceName, obj: Record<string, unknown>): KObject {
    return this.store.upsert(resource, obj);
  }

  /** Deletes an object (a namespace with its objects); returns it with the deletion's resourceVersion. */
  remove(resource: ResourceName, name: string, namespace?: string): KObject {
    return this.store.delete(resource, name, namespace);
  }

  /** Drops the watch history: the next watch from an older resourceVersion gets 410 Expired. */
  compact(): void {
    this.store.compact();
  }

  private record(req: IncomingMessage, status: number): void {
    this.requests.push({ method: req.method ?? "", url: req.url ?? "", status });
    if (this.requests.length > 10000) this.requests.shift();
  }

  private send(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
    this.record(req, status);
    res.writeHead(status, JSON_TYPE);
    res.end(JSON.stringify(body));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.headers.authorization !== `Bearer ${this.token}`) throw new ApiError(401, Reason.Unauthorized, "Unauthorized");
      const url = new URL(req.url ?? "/", "https://apiserver");
      const path = url.pathname.replace(/\/+$/, "") || "/";
      const method = req.method ?? "GET";
      if (method === "GET" && path === "/openapi/v2" && (req.headers.accept ?? "").includes("protobuf")) {
        this.record(req, 200);
        res.writeHead(200, { "Content-Type": OPENAPI_V2_PROTOBUF });
        return void res.end(openapiV2Protobuf());
      }
      const fixed = method === "GET" ? this.fixedDocument(path) : undefined;
      if (fixed) return this.send(req, res, 200, fixed);
      const target = parseTarget(path);
      if (!target) throw new ApiError(404, Reason.NotFound, "the server could not find the requested resource");
      await this.serveResource(req, res, method, url.searchParams, target);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, "InternalError", `Internal error occurred: ${String(e)}`);
      if (!res.headersSent) this.send(req, res, err.code, err.toStatus());
      else res.destroy();
    }
  }

  /** Version, health, discovery and OpenAPI documents. */
  private fixedDocument(path: string): unknown {
    if (path === "/version") return SERVER_VERSION;
    if (path === "/api") return apiVersions(`${this.advertise}:${this.port}`);
    if (path === "/apis") return apiGroupList();
    if (path === "/openapi/v2") return OPENAPI_V2;
    if (path === "/openapi/v3") return { paths: {} };
    let m = /^\/api\/(v1)$/.exec(path);
    if (m) return resourceList(m[1]!);
    m = /^\/apis\/([^/]+)$/.exec(path);
    if (m) return apiGroup(m[1]!);
    m = /^\/apis\/([^/]+\/[^/]+)$/.exec(path);
    if (m) return resourceList(m[1]!);
    return undefined;
  }

  private async serveResource(req: IncomingMessage, res: ServerResponse, method: string, q: URLSearchParams, t: Target): Promise<void> {
    const store = this.store;
    const info = RESOURCES[t.resource];
    const cut = t.sub !== undefined && (t.sub !== "status" || !info.status);
    if (cut || (info.namespaced && t.namespace === undefined && t.name !== undefined)) throw new ApiError(404, Reason.NotFound, "the server could not find the requested resource");
    if (t.name === undefined) {
      if (method === "GET") {
        const field = parseFieldSelector(t.resource, q.get("fieldSelector"));
        const label = parseLabelSelector(q.get("labelSelector"));
        const selector = (o: KObject): boolean => field(o) && label(o);
        if (t.watchPath || q.get("watch") === "true" || q.get("watch") === "1") return this.watch(req, res, q, t, selector);
        const { items, resourceVersion } = store.list(t.resource, t.namespace, selector);
        const list = { kind: `${info.kind}List`, apiVersion: items[0]?.apiVersion ?? (info.group ? `${info.group}/${info.version}` : info.version), metadata: { resourceVersion } };
        return this.send(req, res, 200, { ...list, items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest) });
      }
      if (method === "POST" && (t.namespace !== undefined || !info.namespaced)) {
        return this.send(req, res, 201, store.create(t.resource, await readJson(req), t.namespace));
      }
      throw new ApiError(405, Reason.MethodNotAllowed, `the server does not allow this method on the requested resource`);
    }
    const missing = (): never => {
      throw new ApiError(404, Reason.NotFound, `${info.group ? `${t.resource}.${info.group}` : t.resource} "${t.name}" not found`, { name: t.name, ...(info.group ? { group: info.group } : {}), kind: t.resource });
    };
    const current = (): KObject => store.get(t.resource, t.name!, t.namespace) ?? missing();
    const scope = t.sub === "status" ? "status" : "main";
    switch (method) {
      case "GET":
        return this.send(req, res, 200, current());
      case "PUT": {
        const body = await readJson(req);
        const meta = (body.metadata ?? {}) as Record<string, unknown>;
        if (meta.name !== undefined && meta.name !== t.name) throw new ApiError(400, Reason.BadRequest, "the name of the object does not match the name on the URL");
        return this.send(req, res, 200, store.update(t.resource, { ...body, metadata: { ...meta, name: t.name } }, t.namespace, scope));
      }
      case "PATCH": {
        const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim();
        const patch = await readJson(req, true);
        const old = current();
        let next: unknown;
        if (type === "application/merge-patch+json" || type === "application/strategic-merge-patch+json") next = mergePatch(old, patch);
        else if (type === "application/json-patch+json") next = jsonPatch(old, patch);
        else {
          throw new ApiError(415, Reason.UnsupportedMediaType,
            `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`);
        }
        return this.send(req, res, 200, store.update(t.resource, next as Record<string, unknown>, t.namespace, scope));
      }
      case "DELETE":
        if (t.sub !== undefined) break;
        return this.send(req, res, 200, store.delete(t.resource, t.name, t.namespace));
    }
    throw new ApiError(405, Reason.MethodNotAllowed, `the server does not allow this method on the requested resource`);
  }

  private watch(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, t: Target, selector: (o: KObject) => boolean): void {
    const asked = Number(q.get("timeoutSeconds") ?? "");
    const min = this.opts.minRequestTimeoutSeconds ?? 1800;
    const timeoutMs = asked > 0 ? asked * 1000 : min * 1000 * (1 + Math.random());
    this.record(req, 200);
    let w: ActiveWatch | undefined;
    let over = false;
    w = serveWatch(this.store, res, {
      resource: t.resource, ...(t.namespace !== undefined ? { namespace: t.namespace } : {}), selector,
      resourceVersion: q.get("resourceVersion") ?? undefined, bookmarks: q.get("allowWatchBookmarks") === "true",
      sendInitialEvents: q.get("sendInitialEvents") === "true", timeoutMs, bookmarkIntervalMs: this.opts.bookmarkIntervalMs ?? 1000,
    }, () => {
      over = true; // may run inside serveWatch (a 410 ends the stream at once), before w is assigned
      if (w) this.watches.delete(w);
    });
    if (!over) this.watches.add(w);
  }
}

/** Parses a resource path; undefined when it names nothing served. */
function parseTarget(path: string): Target | undefined {
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/([^/]+))\/(.*)$/.exec(path);
  if (!m) return undefined;
  const groupVersion = m[1] ? `${m[1]}/${m[2]}` : "v1";
  let segs = m[3]!.split("/").map(decodeURIComponent);
  const watchPath = segs[0] === "watch";
  if (watchPath) segs = segs.slice(1);
  let namespace: string | undefined;
  if (segs[0] === "namespaces" && segs.length >= 3 && isResource(segs[2]!) && RESOURCES[segs[2]].namespaced) {
    namespace = segs[1];
    segs = segs.slice(2);
  }
  const [res, name, sub, ...rest] = segs;
  if (!res || !isResource(res) || rest.length) return undefined;
  const info = RESOURCES[res];
  if ((info.group ? `${info.group}/${info.version}` : info.version) !== groupVersion) return undefined;
  return { resource: res, ...(namespace !== undefined ? { namespace } : {}), ...(name !== undefined ? { name } : {}), ...(sub !== undefined ? { sub } : {}), watchPath };
}

/** Reads a JSON body (an object; an array too for JSON patches); 400 on junk. */
async function readJson(req: IncomingMessage, allowArray = false): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (e) {
    throw new ApiError(400, Reason.BadRequest, `error decoding the request body: ${String(e)}`);
  }
  if (typeof v !== "object" || v === null || (Array.isArray(v) && !allowArray)) throw new ApiError(400, Reason.BadRequest, "the request body is not a JSON object");
  return v as Record<string, unknown>;
}
