// Writes to the process's stdout and stderr with plain write(2): Bun builds process.stdout/stderr lazily, for ~11 ms.
import { writeSync } from "node:fs";

/** File descriptor of stdout. */
export const STDOUT = 1;
/** File descriptor of stderr. */
export const STDERR = 2;

/**
 * Writes all of `text` to `fd` synchronously, looping over partial writes and retrying a non-blocking
 * descriptor that is momentarily full. The CNI paths write their few lines this way: creating Bun's
 * `process.stdout` stream costs more than the rest of a VERSION call (measured: 18 ms vs 7 ms).
 */
export function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, "utf8");
  for (let off = 0; off < buf.length; ) {
    try {
      off += writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
    }
  }
}

/** Where warn() writes: fd 2 unless a test swaps it. */
export const diagnostics = { write: (text: string) => writeAll(STDERR, text) };

/** Writes a line of diagnostics to stderr; a closed stderr is ignored (it must never fail a CNI call). */
export function warn(text: string): void {
  try {
    diagnostics.write(text);
  } catch {
    // nowhere left to report it
  }
}
