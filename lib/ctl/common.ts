// Helpers every ovsplanectl command shares: flag coercion and one-line errors.

/** A repeated single-valued flag: the last one wins. */
export function last(v: unknown): string {
  return String(Array.isArray(v) ? v[v.length - 1] : v);
}

/** Runs a command body; an error becomes one line on stderr and exit code 1, never a stack trace. */
export function guard(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    process.stderr.write(`ovsplanectl: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
