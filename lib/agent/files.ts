// The files the agent hands the plugin: the conflist and segments.json, each written atomically and only when it changed.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MARKER_KEY } from "../ctl/installer.ts";
import type { SegmentsFile } from "./model.ts";

/** The conflist's file name in the CNI conf dir. */
export const CONFLIST_NAME = "10-ovsplane.conflist";
/** segments.json's file name in the state dir. */
export const SEGMENTS_NAME = "segments.json";

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Writes text to path through a temporary file and a rename, unless the file holds it already; true when written. */
export function writeAtomic(path: string, text: string, mode = 0o644): boolean {
  if (readText(path) === text) return false;
  const dir = join(path, "..");
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${path.slice(dir.length + 1)}.tmp-${process.pid}`);
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
  return true;
}

/** The conflist's text as the agent writes it (marked as ovsplane's, so `ovsplanectl install` may replace it). */
export function renderAgentConflist(c: Record<string, unknown>): string {
  return JSON.stringify({ ...c, [MARKER_KEY]: "ovsplane-agent" }, null, 2) + "\n";
}

/** Writes the conflist into the CNI conf dir when it changed; true when written. */
export function writeConflist(confDir: string, c: Record<string, unknown>): boolean {
  return writeAtomic(join(confDir, CONFLIST_NAME), renderAgentConflist(c));
}

/**
 * segments.json in a state dir: remembers the last map written and its generation (continued from the
 * file on disk, so a restarted agent keeps counting up), bumps the generation on every change.
 */
export class SegmentsWriter {
  private last: SegmentsFile | undefined;

  constructor(readonly stateDir: string) {
    try {
      const f = JSON.parse(readFileSync(this.path, "utf8")) as SegmentsFile;
      if (f && typeof f.generation === "number" && f.namespaces && typeof f.namespaces === "object") this.last = f;
    } catch {
      this.last = undefined;
    }
  }

  /** The file's path. */
  get path(): string {
    return join(this.stateDir, SEGMENTS_NAME);
  }

  /** The generation last written (0 before any). */
  get generation(): number {
    return this.last?.generation ?? 0;
  }

  /** Writes the map when it differs from the last one written (or the file is gone); true when written. */
  write(namespaces: Record<string, number>): boolean {
    const same = this.last && JSON.stringify(this.last.namespaces) === JSON.stringify(namespaces);
    const next: SegmentsFile = same ? this.last! : { namespaces, generation: this.generation + 1 };
    const written = writeAtomic(this.path, JSON.stringify(next, null, 2) + "\n");
    this.last = next;
    return written;
  }
}
