// ovsplanectl install: copy the executable (temp name, then rename) and write a validated, marked conflist.
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../plugin/config.ts";
import { withPeersFile } from "../plugin/peersfile.ts";
import type { NetConf } from "../cni/types.ts";

/** The top-level key that marks a conflist as written by ovsplanectl (libcni ignores unknown keys). */
export const MARKER_KEY = "ovsplane.dev/managed-by";
/** The names the one multi-call executable answers to. */
export const EXECUTABLE = "ovsplane";
export const LINKS = ["ovsplane-ipam", "ovsplanectl", "ovsplane-agent"] as const;

/** What to install. */
export interface InstallOptions {
  binDir: string;
  confDir: string;
  /** The executable to copy. */
  source: string;
  /** The conflist to write (undefined: executables only). */
  conflist?: Record<string, unknown>;
  conflistName: string;
  force: boolean;
  dryRun: boolean;
}

/** One planned or done action, for the operator to read. */
export interface Action {
  what: string;
  done: boolean;
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Validates every ovsplane plugin of a conflist with the plugin's own parser (throws CniError code 7). */
export function validateConflist(c: Record<string, unknown>): void {
  if (typeof c.name !== "string" || typeof c.cniVersion !== "string" || !Array.isArray(c.plugins) || !c.plugins.length) {
    throw new Error("conflist needs cniVersion, name and a non-empty plugins list");
  }
  for (const p of c.plugins as Record<string, unknown>[]) {
    if (p.type === "ovsplane") parseConfig(withPeersFile({ ...p, name: c.name, cniVersion: c.cniVersion } as NetConf));
  }
}

/** The text of a conflist we write (marked as ours). */
export function renderConflist(c: Record<string, unknown>): string {
  return JSON.stringify({ ...c, [MARKER_KEY]: "ovsplanectl" }, null, 2) + "\n";
}

function ensureLink(dir: string, name: string, o: InstallOptions, actions: Action[]): void {
  const path = join(dir, name);
  let current: string | undefined;
  try {
    current = lstatSync(path).isSymbolicLink() ? readlinkSync(path) : "(a file)";
  } catch {
    current = undefined;
  }
  if (current === EXECUTABLE) return;
  actions.push({ what: `link ${path} -> ${EXECUTABLE}${current ? ` (replacing ${current})` : ""}`, done: !o.dryRun });
  if (o.dryRun) return;
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  symlinkSync(EXECUTABLE, tmp);
  renameSync(tmp, path);
}

/**
 * Installs: the executable (if different) via a temporary name and rename, its links, the conflist
 * (if given, if different, and only over a conflist we wrote unless force). Re-running is a no-op.
 */
export function install(o: InstallOptions): Action[] {
  const actions: Action[] = [];
  if (!existsSync(o.source)) throw new Error(`source executable ${o.source} does not exist`);
  if (!o.dryRun) mkdirSync(o.binDir, { recursive: true });
  const target = join(o.binDir, EXECUTABLE);
  if (!existsSync(target) || sha256(target) !== sha256(o.source)) {
    actions.push({ what: `copy ${o.source} -> ${target}`, done: !o.dryRun });
    if (!o.dryRun) {
      // A runtime may be executing the old file right now: never write it in place.
      const tmp = join(o.binDir, `.${EXECUTABLE}.tmp-${process.pid}`);
      copyFileSync(o.source, tmp);
      chmodSync(tmp, 0o755);
      renameSync(tmp, target);
    }
  }
  for (const l of LINKS) if (existsSync(o.binDir) || o.dryRun) ensureLink(o.binDir, l, o, actions);
  if (o.conflist) {
    validateConflist(o.conflist);
    const text = renderConflist(o.conflist);
    const path = join(o.confDir, o.conflistName);
    const old = existsSync(path) ? readFileSync(path, "utf8") : undefined;
    if (old !== text) {
      const ours = old !== undefined && old.includes(`"${MARKER_KEY}"`);
      if (old !== undefined && !ours && !o.force) {
        throw new Error(`${path} exists and was not written by ovsplanectl: not overwriting it (use --force)`);
      }
      actions.push({ what: `write ${path}${old !== undefined ? " (replacing)" : ""}`, done: !o.dryRun });
      if (!o.dryRun) {
        mkdirSync(o.confDir, { recursive: true });
        const tmp = join(o.confDir, `.${o.conflistName}.tmp-${process.pid}`);
        writeFileSync(tmp, text, { mode: 0o644 });
        renameSync(tmp, path);
      }
    }
  }
  return actions;
}
