// OVSDB data (RFC 7047): value helpers for maps, sets and uuid references; rows, table updates, monitor requests.

/** One row as OVSDB sends it: column name to RFC 7047 value (atoms, `["set", ...]`, `["map", ...]`, `["uuid", s]`). */
export type Row = Record<string, unknown>;

/** What happened to one row (RFC 7047 §4.1.6): insert has only `new`, delete only `old`, modify both. */
export interface RowUpdate {
  old?: Row;
  new?: Row;
}

/** An `update` notification's payload, or a monitor's initial state: table name to row uuid to RowUpdate. */
export type TableUpdates = Record<string, Record<string, RowUpdate>>;

/** RFC 7047 §4.1.5 monitor request of one table; all columns when `columns` is absent. */
export interface MonitorRequest {
  columns?: readonly string[];
  select?: { initial?: boolean; insert?: boolean; delete?: boolean; modify?: boolean };
}

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
