// Test-side clients of the fake API server: raw HTTPS requests and watches (the wire as it is), and kubectl runs.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { run, type ExecResult } from "../../../lib/host/exec.ts";
import { JsonSplitter } from "../../../lib/ovs/jsonstream.ts";

/** Where and how to reach a server. */
export interface Endpoint {
  /** `https://IP:PORT`. */
  url: string;
  caFile: string;
  /** Bearer token (none: the request is anonymous). */
  token?: string;
}

/** A raw response. */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON, or undefined. */
  json: any;
}

/** One HTTPS request; never throws on an HTTP error status. */
export function apiRequest(ep: Endpoint, method: string, path: string, body?: unknown, contentType = "application/json"): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(ep.url + path, {
      method, ca: readFileSync(ep.caFile),
      headers: {
        Accept: "application/json", ...(ep.token ? { Authorization: `Bearer ${ep.token}` } : {}),
        ...(payload ? { "Content-Type": contentType, "Content-Length": payload.length } : {}),
      },
    }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (d: string) => (text += d));
      res.on("end", () => {
        let json: unknown;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** A watch opened by openWatch. */
export interface RawWatch {
  status: number;
  /** Every line received so far, parsed. */
  events: any[];
  /** Waits (default 5 s) for an event matching pred among those not yet consumed by next(), and returns it. */
  next(pred?: (e: any) => boolean, timeoutMs?: number): Promise<any>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Opens a watch (path with its query) and collects its newline-delimited JSON events. */
export function openWatch(ep: Endpoint, path: string): Promise<RawWatch> {
  return new Promise((resolve, reject) => {
    const events: any[] = [];
    let cursor = 0;
    const waiters = new Set<() => void>();
    let endedResolve = (): void => undefined;
    const ended = new Promise<void>((r) => (endedResolve = r));
    const req = request(ep.url + path, { ca: readFileSync(ep.caFile), headers: ep.token ? { Authorization: `Bearer ${ep.token}` } : {} }, (res) => {
      let buf = "";
      res.setEncoding("utf8").on("data", (d: string) => {
        buf += d;
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim()) events.push(JSON.parse(line));
        }
        waiters.forEach((w) => w());
      });
      res.on("end", endedResolve).on("close", endedResolve).on("error", endedResolve);
      resolve({
        status: res.statusCode ?? 0, events, ended, close: () => req.destroy(),
        next: (pred = () => true, timeoutMs = 5000) => new Promise((ok, fail) => {
          const check = (): void => {
            for (; cursor < events.length; cursor++) {
              if (pred(events[cursor])) {
                waiters.delete(check);
                clearTimeout(timer);
                ok(events[cursor++]);
                return;
              }
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            fail(new Error(`no matching watch event within ${timeoutMs} ms; got ${JSON.stringify(events.map((e) => e.type))}`));
          }, timeoutMs);
          waiters.add(check);
          check();
        }),
      });
    });
    req.on("error", reject);
    req.end();
  });
}

/** kubectl with a kubeconfig and a private discovery cache dir. */
export function kubectl(kubeconfig: string, cacheDir: string, args: readonly string[], allowFail = false): Promise<ExecResult> {
  return run(["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", cacheDir, ...args], { allowFail, timeoutMs: 30_000 });
}

/** A background `kubectl ... -w -o json`: its output parsed into JSON values as they arrive. */
export interface KubectlWatch {
  values: any[];
  /** Waits (default 10 s) until some value satisfies pred. */
  waitFor(pred: (v: any) => boolean, timeoutMs?: number): Promise<any>;
  /** Kills it (SIGTERM to its own pid) and waits for it to exit; returns its stderr. */
  stop(): Promise<string>;
}

/** Starts kubectl in the background (args should include -w and -o json). */
export function kubectlWatch(kubeconfig: string, cacheDir: string, args: readonly string[]): KubectlWatch {
  const child = spawn("kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", cacheDir, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const values: any[] = [];
  const splitter = new JsonSplitter();
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    for (const t of splitter.push(d)) values.push(JSON.parse(t));
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    values,
    async waitFor(pred, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const v = values.find(pred);
        if (v) return v;
        if (Date.now() > until || child.exitCode !== null) {
          throw new Error(`kubectl watch: no matching value; got ${JSON.stringify(values.map((x) => [x.type, x.object?.metadata?.name]))}; stderr: ${stderr}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      return stderr;
    },
  };
}
