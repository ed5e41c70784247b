// Per-test fixtures on shared nodes: a scope whose cleanups always run, so every test stands on its own; lease listings.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Something that undoes a test's setup (its result is ignored). */
export type Cleanup = () => unknown;

/** What a scoped test sets up, to be taken down when it ends. */
export interface Scope {
  /**
   * Registers a cleanup; cleanups run in reverse order when the test ends, whether it passed or not.
   * Returns a function that drops it again (for a test whose own steps, e.g. the DEL under test, did the cleanup).
   */
  defer(cleanup: Cleanup): () => void;
  /** Runs setup and registers teardown of its result; returns the result. */
  use<T>(setup: () => Promise<T>, teardown: (value: T) => unknown): Promise<T>;
}

/**
 * Wraps a test body: it gets a Scope, and what it registers there is undone after it, even when it fails,
 * so the shared node is left as the test found it. A failing cleanup fails a passing test; after a failing
 * test, the test's own error is the one reported.
 */
export function scoped(body: (scope: Scope) => Promise<void>): () => Promise<void> {
  return async () => {
    const cleanups: Cleanup[] = [];
    const scope: Scope = {
      defer(cleanup) {
        cleanups.push(cleanup);
        return () => {
          const i = cleanups.indexOf(cleanup);
          if (i >= 0) cleanups.splice(i, 1);
        };
      },
      async use(setup, teardown) {
        const value = await setup();
        cleanups.push(() => teardown(value));
        return value;
      },
    };
    let cleanupError: unknown;
    const undo = async () => {
      for (const cleanup of cleanups.reverse()) {
        try {
          await cleanup();
        } catch (e) {
          cleanupError ??= e;
        }
      }
    };
    try {
      await body(scope);
    } catch (e) {
      await undo();
      throw e;
    }
    await undo();
    if (cleanupError !== undefined) throw cleanupError;
  };
}

/** The IPv4 lease files of one network in an IPAM data dir ([] before the first lease creates the dir). */
export function leaseFiles(dataDir: string, network = "podnet"): string[] {
  const dir = join(dataDir, network);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort();
}

/** A before() hook that prints what it threw (uvu 0.5 hides hook errors) before failing the suite with it. */
export function loudSetup(body: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await body();
    } catch (e) {
      console.error("setup failed:", e);
      throw e;
    }
  };
}
