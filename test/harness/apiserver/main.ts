// CLI entry: runs the fake API server as a process (e.g. inside a netns) driven by JSON-line control commands on stdin.
//
//   tsx test/harness/apiserver/main.ts --listen 198.18.0.200:6443 --dir /tmp/x [--token T] [--history N] [--bookmark-ms N]
//
// Writes ca.crt, token and kubeconfig into --dir, then prints one line `{"ready":true,"url":...,"kubeconfig":...}`.
// Each stdin line `{"id":1,"op":"upsert","resource":"nodes","object":{...}}` gets one stdout line
// `{"id":1,"ok":true,"result":...}` or `{"id":1,"ok":false,"error":"...","code":404}`. Ops: upsert, remove (resource,
// name, namespace), get (same), list (resource, namespace), compact, stop, start, rv, exit. Exits at stdin EOF.
import { createInterface } from "node:readline";
import { ApiError, isResource } from "./resources.ts";
import { ApiServer } from "./server.ts";

/** One control command read from stdin. */
export interface ControlCommand {
  id?: number | string;
  op: "upsert" | "remove" | "get" | "list" | "compact" | "stop" | "start" | "rv" | "exit";
  resource?: string;
  name?: string;
  namespace?: string;
  object?: Record<string, unknown>;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function runCommand(s: ApiServer, c: ControlCommand): Promise<unknown> {
  const resource = (): Parameters<ApiServer["upsert"]>[0] => {
    if (!c.resource || !isResource(c.resource)) throw new Error(`unknown resource ${String(c.resource)}`);
    return c.resource;
  };
  switch (c.op) {
    case "upsert": return s.upsert(resource(), c.object ?? {});
    case "remove": return s.remove(resource(), c.name ?? "", c.namespace);
    case "get": return s.store.get(resource(), c.name ?? "", c.namespace) ?? null;
    case "list": return s.store.list(resource(), c.namespace);
    case "compact": return s.compact();
    case "stop": return s.stop();
    case "start": return s.start();
    case "rv": return s.store.resourceVersion;
    case "exit": return s.stop().then(() => process.exit(0));
    default: throw new Error(`unknown op ${String((c as { op: unknown }).op)}`);
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const listen = flag(args, "--listen") ?? "127.0.0.1:6443";
  const dir = flag(args, "--dir");
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m || !dir) {
    process.stderr.write("usage: main.ts --listen IP:PORT --dir DIR [--token T] [--history N] [--bookmark-ms N]\n");
    process.exit(2);
  }
  const num = (f: string): number | undefined => (flag(args, f) !== undefined ? Number(flag(args, f)) : undefined);
  const server = await ApiServer.start({
    host: m[1]!, port: Number(m[2]), dir,
    ...(flag(args, "--token") ? { token: flag(args, "--token")! } : {}),
    ...(num("--history") !== undefined ? { historyLimit: num("--history")! } : {}),
    ...(num("--bookmark-ms") !== undefined ? { bookmarkIntervalMs: num("--bookmark-ms")! } : {}),
  });
  const out = (v: unknown): boolean => process.stdout.write(JSON.stringify(v) + "\n");
  out({ ready: true, url: server.url, kubeconfig: server.kubeconfigPath, caFile: server.caFile, token: server.token, pid: process.pid });
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (!line.trim()) return;
    let c: ControlCommand;
    try {
      c = JSON.parse(line) as ControlCommand;
    } catch (e) {
      out({ ok: false, error: `bad command: ${String(e)}` });
      return;
    }
    runCommand(server, c).then(
      (result) => out({ id: c.id, ok: true, result: result ?? null }),
      (e: unknown) => out({ id: c.id, ok: false, error: e instanceof Error ? e.message : String(e), ...(e instanceof ApiError ? { code: e.code } : {}) }),
    );
  });
  lines.on("close", () => void server.stop().finally(() => process.exit(0)));
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => void server.stop().finally(() => process.exit(0)));
}

void main().catch((e: unknown) => {
  process.stderr.write(`fake apiserver: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
