// Splits an unframed byte stream of concatenated JSON objects/arrays (OVSDB JSON-RPC) into whole JSON texts.

const LBRACE = 0x7b, RBRACE = 0x7d, LBRACKET = 0x5b, RBRACKET = 0x5d, QUOTE = 0x22, BACKSLASH = 0x5c;

/**
 * Incremental splitter: push() byte chunks cut anywhere (inside strings, escapes or multi-byte UTF-8
 * characters) and get back each completed top-level JSON text, in order. It works on bytes, so a
 * character split across chunks is only decoded once the whole value is there. Only objects and
 * arrays may appear at top level (JSON-RPC messages are objects); whitespace between them is skipped.
 */
export class JsonSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;

  /** @param maxBytes largest single value accepted before push() throws (default 64 MiB). */
  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  /** Feeds bytes; returns the JSON texts they complete. Throws SyntaxError on junk between values. */
  push(chunk: Uint8Array): string[] {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const out: string[] = [];
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i]!;
      if (this.depth === 0) {
        if (c === LBRACE || c === LBRACKET) {
          start = i;
          this.depth = 1;
        } else if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) {
          throw new SyntaxError(`unexpected byte 0x${c.toString(16)} between JSON values`);
        }
      } else if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) this.inString = false;
      } else if (c === QUOTE) {
        this.inString = true;
      } else if (c === LBRACE || c === LBRACKET) {
        this.depth++;
      } else if ((c === RBRACE || c === RBRACKET) && --this.depth === 0) {
        this.parts.push(buf.subarray(start, i + 1));
        out.push(Buffer.concat(this.parts).toString("utf8"));
        this.parts = [];
        this.size = 0;
      }
    }
    if (this.depth > 0) {
      // Copy: the caller may reuse its buffer.
      const rest = Buffer.from(buf.subarray(start));
      this.parts.push(rest);
      this.size += rest.length;
      if (this.size > this.maxBytes) throw new SyntaxError(`JSON value longer than ${this.maxBytes} bytes`);
    }
    return out;
  }

  /** Bytes of an incomplete value held back so far. */
  get buffered(): number {
    return this.size;
  }
}
