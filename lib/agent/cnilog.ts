// Follows the plugin's CNI call log (one JSON line per call, lib/plugin/calllog.ts) from its end, across rotation, for the latency histogram.
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";

/** One call taken from the log: what the histogram needs. */
export interface CallSample {
  command: string;
  result: "ok" | "error";
  seconds: number;
}

const COMMANDS = new Set(["ADD", "DEL", "CHECK", "GC", "STATUS"]);

/** One log line to a sample; undefined for a line that is not a call record of a known command (pure). */
export function parseCallLine(line: string): CallSample | undefined {
  let r: unknown;
  try {
    r = JSON.parse(line);
  } catch {
    return undefined;
  }
  const { command, ok, ms } = (r ?? {}) as { command?: unknown; ok?: unknown; ms?: unknown };
  if (typeof command !== "string" || !COMMANDS.has(command) || typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return undefined;
  return { command, result: ok === true ? "ok" : "error", seconds: ms / 1000 };
}

/** Splits buffered text into complete lines and the unfinished rest (pure). */
export function splitLines(text: string): { lines: string[]; rest: string } {
  const i = text.lastIndexOf("\n");
  if (i < 0) return { lines: [], rest: text };
  return { lines: text.slice(0, i).split("\n").filter((l) => l.trim() !== ""), rest: text.slice(i + 1) };
}

/**
 * Polls one file and hands every complete appended line to onLine. Starts at the end of the file as it
 * is at the first poll (older calls are not counted again after an agent restart); a file created later
 * is read from its start. Rotation (the path names another inode) or truncation: the old file is read to
 * its end, then the new one from its start.
 */
export class LogFollower {
  private fd = -1;
  private ino = -1;
  private pos = 0;
  private rest = "";
  private first = true;
  private timer: NodeJS.Timeout | undefined;

  constructor(private path: string, private readonly onLine: (line: string) => void) {}

  /** The file followed. */
  get file(): string {
    return this.path;
  }

  /** Follows another file (the conflist's logFile changed); starts at its end. */
  setFile(path: string): void {
    if (path === this.path) return;
    this.close();
    this.path = path;
    this.first = true;
  }

  /** Polls every intervalMs until stop(). */
  start(intervalMs = 500): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), intervalMs);
  }

  /** Stops polling and closes the file. */
  stop(): void {
    clearInterval(this.timer);
    this.close();
  }

  /** Reads what was appended since the last poll (errors: the file is retried at the next poll). */
  poll(): void {
    try {
      const st = statSync(this.path, { throwIfNoEntry: false });
      if (this.fd >= 0 && (!st || st.ino !== this.ino || st.size < this.pos)) {
        if (st && st.ino === this.ino) this.pos = 0; // truncated in place
        else {
          this.drain(); // rotated: the rest of the old file, then the new one from its start
          this.close();
          this.first = false;
        }
      }
      if (!st) {
        this.first = false; // a file that appears later is read whole
        return;
      }
      if (this.fd < 0) {
        this.fd = openSync(this.path, "r");
        this.ino = fstatSync(this.fd).ino;
        this.pos = this.first ? fstatSync(this.fd).size : 0;
        this.first = false;
        this.rest = "";
      }
      this.drain();
    } catch {
      this.close();
    }
  }

  private drain(): void {
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = readSync(this.fd, buf, 0, buf.length, this.pos);
      if (n <= 0) break;
      this.pos += n;
      const { lines, rest } = splitLines(this.rest + buf.toString("utf8", 0, n));
      this.rest = rest;
      for (const l of lines) this.onLine(l);
    }
  }

  private close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.ino = -1;
    this.rest = "";
  }
}
