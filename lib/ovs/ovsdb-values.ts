// OVSDB value helpers (RFC 7047 §5.1): build and read maps, sets and uuid references.

/** An OVSDB map value: `["map", [[k, v], ...]]`. */
export function ovsMap(obj: Record<string, string>): ["map", [string, string][]] {
  return ["map", Object.entries(obj)];
}

/** An OVSDB set value: `["set", [...]]`. */
export function ovsSet<T>(arr: readonly T[]): ["set", T[]] {
  return ["set", [...arr]];
}

/** A reference to an existing row: `["uuid", s]`. */
export function uuid(s: string): ["uuid", string] {
  return ["uuid", s];
}

/** A reference to a row inserted in the same transaction under `"uuid-name": s`. */
export function namedUuid(s: string): ["named-uuid", string] {
  return ["named-uuid", s];
}

/** Reads an OVSDB map (`["map", [[k, v], ...]]`) into an object; throws TypeError on anything else. */
export function mapToObject(v: unknown): Record<string, any> {
  if (!Array.isArray(v) || v[0] !== "map" || !Array.isArray(v[1])) throw new TypeError(`not an OVSDB map: ${JSON.stringify(v)}`);
  return Object.fromEntries((v[1] as [unknown, unknown][]).map(([k, x]) => [String(k), x]));
}

/** Reads an OVSDB set: `["set", [...]]` gives its elements, a bare value (a one-element set) gives `[value]`. */
export function setToArray(v: unknown): any[] {
  if (Array.isArray(v) && v[0] === "set" && Array.isArray(v[1])) return v[1];
  return [v];
}

/** The UUID string of a `["uuid", s]` value; throws TypeError on anything else. */
export function uuidOf(v: unknown): string {
  if (Array.isArray(v) && v[0] === "uuid" && typeof v[1] === "string") return v[1];
  throw new TypeError(`not an OVSDB uuid: ${JSON.stringify(v)}`);
}
