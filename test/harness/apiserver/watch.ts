// One watch stream of the fake API server: newline-delimited JSON events, selectors, bookmarks, timeouts, 410 as an ERROR event.
import type { ServerResponse } from "node:http";
import { apiVersionOf, ApiError, Reason, RESOURCES, type ResourceName } from "./resources.ts";
import { EventType, type EventTypeName, type KObject, type Store, type StoreEvent } from "./store.ts";

/** What a watch request asked for. */
export interface WatchRequest {
  resource: ResourceName;
  /** Only this namespace's objects (undefined: all). */
  namespace?: string;
  /** The field and label selectors, combined. */
  selector: (o: KObject) => boolean;
  /** The `resourceVersion` parameter: undefined, "" or "0" start with synthetic ADDED events for the current state. */
  resourceVersion?: string;
  /** `allowWatchBookmarks=true`. */
  bookmarks: boolean;
  /** `sendInitialEvents=true` (watch-list): initial ADDED events, then a BOOKMARK annotated `k8s.io/initial-events-end`. */
  sendInitialEvents: boolean;
  /** When the server ends the stream. */
  timeoutMs: number;
  bookmarkIntervalMs: number;
}

/** A running watch; end() closes it (cleanly with the chunked terminator, or abruptly). */
export interface ActiveWatch {
  end(abrupt?: boolean): void;
}

/**
 * Streams a watch on res: HTTP 200 at once, then one JSON event per line (`{"type":...,"object":{...}}`, objects with
 * kind and apiVersion). A resourceVersion older than the store's history gets an ERROR event with a 410 Expired
 * Status, then the stream ends. onEnd runs once when the stream is over for any reason.
 */
export function serveWatch(store: Store, res: ServerResponse, w: WatchRequest, onEnd: () => void): ActiveWatch {
  res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-cache, private" });
  res.flushHeaders();
  const timers: { timeout?: NodeJS.Timeout; bookmark?: NodeJS.Timeout } = {};
  let unsubscribe = (): void => undefined;
  let ended = false;
  const end = (abrupt = false): void => {
    if (ended) return;
    ended = true;
    clearTimeout(timers.timeout);
    clearTimeout(timers.bookmark);
    unsubscribe();
    if (abrupt) res.destroy();
    else res.end();
    onEnd();
  };
  res.on("close", () => end(true));
  const send = (type: EventTypeName, object: unknown): void => {
    if (!ended) res.write(JSON.stringify({ type, object }) + "\n");
  };
  const matches = (o: KObject | undefined): boolean => !!o && (w.namespace === undefined || o.metadata.namespace === w.namespace) && w.selector(o);
  const deliver = (e: StoreEvent): void => {
    if (e.resource !== w.resource) return;
    const now = matches(e.object), before = matches(e.previous);
    if (e.type === EventType.Added && now) send(EventType.Added, e.object);
    else if (e.type === EventType.Deleted && before) send(EventType.Deleted, e.object);
    else if (e.type === EventType.Modified) {
      if (now && before) send(EventType.Modified, e.object);
      else if (now) send(EventType.Added, e.object);
      else if (before) send(EventType.Deleted, e.object);
    }
  };
  const bookmark = (annotations?: Record<string, string>): void =>
    send(EventType.Bookmark, {
      kind: RESOURCES[w.resource].kind, apiVersion: apiVersionOf(w.resource),
      metadata: { resourceVersion: store.resourceVersion, ...(annotations ? { annotations } : {}) },
    });

  const rv = w.resourceVersion;
  if (!rv || rv === "0" || w.sendInitialEvents) {
    for (const o of store.list(w.resource, w.namespace, w.selector).items) send(EventType.Added, o);
    if (w.sendInitialEvents) bookmark({ "k8s.io/initial-events-end": "true" });
  } else {
    const n = Number(rv);
    if (!/^\d+$/.test(rv)) {
      send(EventType.Error, new ApiError(400, Reason.BadRequest, `invalid resource version: ${rv}`).toStatus());
      end();
      return { end };
    }
    const backlog = store.eventsSince(w.resource, n);
    if (backlog === "expired") {
      send(EventType.Error, new ApiError(410, Reason.Expired, `too old resource version: ${n} (${store.oldestResourceVersion})`).toStatus());
      end();
      return { end };
    }
    backlog.forEach(deliver);
  }
  unsubscribe = store.subscribe(deliver);
  timers.timeout = setTimeout(() => end(), w.timeoutMs);
  if (w.bookmarks) {
    const tick = (): void => {
      bookmark();
      timers.bookmark = setTimeout(tick, w.bookmarkIntervalMs);
    };
    timers.bookmark = setTimeout(tick, w.bookmarkIntervalMs);
  }
  return { end };
}
