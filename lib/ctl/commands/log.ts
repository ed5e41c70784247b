// ovsplanectl log: the CNI call log (one JSON line per call), filtered, as a table or JSON; -f follows it.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import type { CommandModule } from "yargs";
import { DEFAULT_LOG_FILE, type CallRecord } from "../../plugin/calllog.ts";
import { DEFAULT_CONF_DIR, loadNetworks } from "../node-state.ts";
import { json, outTo, paint, table, type Out } from "../output.ts";
import { last } from "../common.ts";

/** Options of the log command. */
export interface LogOptions {
  file?: string;
  confDir?: string;
  network?: string;
  pod?: string;
  errors?: boolean;
  follow?: boolean;
  json?: boolean;
}

/** The log file to read: --file, else the logFile of the (named, or first) ovsplane network in the conf dir. */
export function logPath(o: LogOptions): string {
  if (o.file) return o.file;
  const { networks } = loadNetworks(o.confDir ?? DEFAULT_CONF_DIR);
  const n = o.network ? networks.find((x) => x.cfg.name === o.network) : networks[0];
  if (!n) {
    if (o.network || o.confDir) throw new Error(`no ovsplane network ${o.network ?? ""} in ${o.confDir ?? DEFAULT_CONF_DIR}`.replace("  ", " "));
    return DEFAULT_LOG_FILE;
  }
  if (n.cfg.logFile === "") throw new Error(`network ${n.cfg.name} has no call log ("logFile": "" in ${n.file})`);
  return n.cfg.logFile ?? DEFAULT_LOG_FILE;
}

/** The records of log text (lines that are not JSON skipped). */
export function parseLog(text: string): CallRecord[] {
  const out: CallRecord[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as CallRecord);
    } catch {
      /* a torn or foreign line */
    }
  }
  return out;
}

/** A filter of records by pod (`ns/name`, or a container ID) and failure. */
export function matcher(o: LogOptions): (r: CallRecord) => boolean {
  return (r) => (!o.errors || !r.ok) && (!o.pod || r.pod === o.pod || r.containerID === o.pod);
}

function resultText(out: Out, r: CallRecord): string {
  if (!r.ok) return paint(out, "bad", `code ${r.code}: ${r.msg ?? ""}`);
  return paint(out, "ok", r.ips?.length ? r.ips.join(",") : "ok");
}

function rowOf(out: Out, r: CallRecord): string[] {
  return [r.time, r.command, r.pod ?? "-", r.containerID ?? "-", r.ifname ?? "-", r.ms.toFixed(1), resultText(out, r)];
}

const HEADER = ["TIME", "CMD", "POD", "CONTAINER", "IF", "MS", "RESULT"] as const;

/** Prints the matching records of the log (and its rotated generation), then follows when asked. */
export async function showLog(o: LogOptions, out: Out = outTo()): Promise<void> {
  const file = logPath(o);
  const keep = matcher(o);
  const read = (f: string) => (existsSync(f) ? readFileSync(f, "utf8") : "");
  if (!o.follow && !existsSync(file) && !existsSync(`${file}.1`)) throw new Error(`no call log at ${file}`);
  const records = parseLog(read(`${file}.1`) + read(file)).filter(keep);
  if (o.json && !o.follow) return json(out, records);
  if (o.json) records.forEach((r) => out.line(JSON.stringify(r)));
  else table(out, HEADER, records.map((r) => rowOf(out, r)));
  if (o.follow) await follow(file, existsSync(file) ? statSync(file).size : 0, (r) => {
    if (keep(r)) out.line(o.json ? JSON.stringify(r) : rowOf(out, r).join("  "));
  });
}

/** Polls the file for appended lines from offset (starting over after a rotation) until SIGINT/SIGTERM. */
function follow(file: string, offset: number, emit: (r: CallRecord) => void): Promise<void> {
  let pos = offset;
  let partial = "";
  return new Promise((resolve) => {
    const tick = () => {
      const st = statSync(file, { throwIfNoEntry: false });
      if (!st) return;
      if (st.size < pos) (pos = 0), (partial = "");
      if (st.size === pos) return;
      const fd = openSync(file, "r");
      try {
        const buf = Buffer.alloc(st.size - pos);
        const n = readSync(fd, buf, 0, buf.length, pos);
        pos += n;
        const text = partial + buf.subarray(0, n).toString("utf8");
        const cut = text.lastIndexOf("\n") + 1;
        partial = text.slice(cut);
        parseLog(text.slice(0, cut)).forEach(emit);
      } finally {
        closeSync(fd);
      }
    };
    const timer = setInterval(tick, 250);
    const stop = () => (clearInterval(timer), resolve());
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

/** The `log` command. */
export const logCommand: CommandModule = {
  command: "log",
  describe: "show the CNI call log (one line per ADD/DEL/CHECK/GC/STATUS)",
  builder: (y) =>
    y
      .option("file", { type: "string", describe: "the log file (default: the network's logFile)" })
      .option("conf-dir", { type: "string", describe: `CNI conf dir to find the network in (default ${DEFAULT_CONF_DIR})` })
      .option("network", { type: "string", describe: "ovsplane network name (default: the first in the conf dir)" })
      .option("pod", { type: "string", describe: "only calls of this pod (NAMESPACE/NAME) or container ID" })
      .option("errors", { type: "boolean", describe: "only failed calls" })
      .option("f", { alias: "follow", type: "boolean", describe: "keep printing calls as they are logged" })
      .option("json", { type: "boolean", describe: "JSON (an array; one object per line with -f)" })
      .example("$0 log --errors", "the failed calls")
      .example("$0 log --pod default/web-0 -f", "one pod's calls, following"),
  handler: async (a) => {
    const s = (k: string) => (a[k] === undefined ? undefined : last(a[k]));
    const o: LogOptions = { errors: !!a.errors, follow: !!a.f, json: !!a.json };
    for (const [k, f] of [["file", "file"], ["confDir", "conf-dir"], ["network", "network"], ["pod", "pod"]] as const) {
      const v = s(f);
      if (v !== undefined) o[k] = v;
    }
    try {
      await showLog(o);
    } catch (e) {
      process.stderr.write(`ovsplanectl: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    }
  },
};
