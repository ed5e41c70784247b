// The `ip -batch` lines of the node's host state (dataplane/hoststate.ts) read as typed operations (pure), for netlink.

/** One host state operation: what an `ip -batch` line of hoststate.ts asks for. */
export type BatchOp =
  | { op: "addr"; action: "replace" | "del"; address: string; dev: string }
  | { op: "link-up"; dev: string }
  | { op: "route"; action: "replace" | "del"; dst: string; dev: string; src?: string; protocol?: number; metric?: number };

/** `default`, `A.B.C.D` or `A.B.C.D/len` as `A.B.C.D/len`. */
function prefix(s: string): string {
  if (s === "default") return "0.0.0.0/0";
  return s.includes("/") ? s : `${s}/32`;
}

/** The `key value` pairs after a line's object and verb. */
function pairs(words: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < words.length; i += 2) m.set(words[i]!, words[i + 1]!);
  return m;
}

/**
 * Reads one line of the forms hoststate.ts writes: `addr replace|del A/len dev D`, `link set D up`,
 * `route replace|del DST dev D [src S] [proto P] [metric M]`. Anything else throws: the netlink
 * path serves exactly these, nothing is silently dropped.
 */
export function parseBatchLine(line: string): BatchOp {
  const w = line.trim().split(/\s+/);
  const [obj, verb] = w;
  const bad = () => new Error(`host state line not understood: ${JSON.stringify(line)}`);
  if (obj === "link" && verb === "set" && w.length === 4 && w[3] === "up") return { op: "link-up", dev: w[2]! };
  if ((obj === "addr" || obj === "route") && (verb === "replace" || verb === "del") && w.length >= 5 && (w.length - 3) % 2 === 0) {
    const kv = pairs(w.slice(3));
    const dev = kv.get("dev");
    if (!dev || [...kv.keys()].some((k) => !["dev", "src", "proto", "metric"].includes(k))) throw bad();
    if (obj === "addr") {
      if (kv.size !== 1) throw bad();
      return { op: "addr", action: verb, address: w[2]!, dev };
    }
    const num = (k: string) => (kv.has(k) ? Number(kv.get(k)) : undefined);
    const protocol = num("proto");
    const metric = num("metric");
    const src = kv.get("src");
    return { op: "route", action: verb, dst: prefix(w[2]!), dev, ...(src ? { src } : {}), ...(protocol !== undefined ? { protocol } : {}), ...(metric !== undefined ? { metric } : {}) };
  }
  throw bad();
}
