// CNI_ARGS ("K=V;K=V") parsing and the IgnoreUnknown rule.
import { invalidEnv } from "./errors.ts";

/** Parses CNI_ARGS into a map; a pair without "=" is an error (code 4). */
export function parseCniArgs(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const pair of raw.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw invalidEnv("CNI_ARGS", raw, `pair ${JSON.stringify(pair)} is not KEY=VALUE`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** True when IgnoreUnknown is set to a true value. */
export function ignoresUnknown(args: Record<string, string>): boolean {
  const v = (args.IgnoreUnknown ?? "").toLowerCase();
  return v === "1" || v === "true";
}

/** Keys runtimes send that every plugin may ignore. */
export const RUNTIME_KEYS = [
  "IgnoreUnknown",
  "K8S_POD_NAMESPACE",
  "K8S_POD_NAME",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
] as const;

/** Refuses unknown keys (code 4) unless IgnoreUnknown is set. */
export function checkKnownArgs(args: Record<string, string>, known: readonly string[]): void {
  if (ignoresUnknown(args)) return;
  const allowed = new Set<string>([...RUNTIME_KEYS, ...known]);
  const unknown = Object.keys(args).filter((k) => !allowed.has(k));
  if (unknown.length) {
    throw invalidEnv("CNI_ARGS", undefined, `unknown key(s) ${unknown.join(", ")} (set IgnoreUnknown=1 to allow them)`);
  }
}
