// A pure in-memory replica of monitored OVSDB tables: apply updates, reconcile with a fresh snapshot, report row changes.
import type { Row, TableUpdates } from "./ovsdb-values.ts";

/** The replica: table name to row uuid to the row's monitored columns. */
export type TableCache = Map<string, Map<string, Row>>;

/** The kinds of row change, as `as const` values. */
export const ChangeKind = { Added: "added", Changed: "changed", Removed: "removed" } as const;
/** "added" | "changed" | "removed". */
export type ChangeKindValue = (typeof ChangeKind)[keyof typeof ChangeKind];

/**
 * One row change of table `T`. `row` is the row after the change (absent for "removed"); `old` the
 * full row before it as the cache knew it (absent for "added").
 */
export interface RowChange<T extends string = string> {
  kind: ChangeKindValue;
  table: T;
  uuid: string;
  row?: Row;
  old?: Row;
}

/** An empty cache holding the given tables (tables not listed are created on first update). */
export function newCache(tables: Iterable<string> = []): TableCache {
  return new Map([...tables].map((t) => [t, new Map<string, Row>()]));
}

/**
 * Applies one `update` notification (or an initial state) to `cache` in place and returns the row
 * changes, in the order of the updates. RFC 7047 semantics: `new` without `old` inserts, `old`
 * without `new` deletes, both modify. A modify's `new` is merged over the cached row, so a partial
 * `new` (only the changed columns, as in `update2` diffs of whole values) works as well as a full
 * one. A modify of an unknown row counts as an addition; a delete of an unknown row changes nothing.
 */
export function applyUpdate<T extends string>(cache: TableCache, updates: TableUpdates): RowChange<T>[] {
  const changes: RowChange<T>[] = [];
  for (const [table, rows] of Object.entries(updates)) {
    const rowsOf = tableOf(cache, table);
    for (const [uuid, u] of Object.entries(rows)) {
      const before = rowsOf.get(uuid);
      if (u.new === undefined || u.new === null) {
        if (before === undefined) continue;
        rowsOf.delete(uuid);
        changes.push({ kind: ChangeKind.Removed, table: table as T, uuid, old: before });
        continue;
      }
      const row: Row = before === undefined ? { ...u.new } : { ...before, ...u.new };
      rowsOf.set(uuid, row);
      if (before === undefined) changes.push({ kind: ChangeKind.Added, table: table as T, uuid, row });
      else if (!sameRow(before, row)) changes.push({ kind: ChangeKind.Changed, table: table as T, uuid, row, old: before });
    }
  }
  return changes;
}

/**
 * Replaces the rows of every table of `snapshot` (a monitor's initial state after a reconnect) and
 * of `tables` with the snapshot's, and returns what differs from the cache: removals of rows that
 * are gone, additions of new rows, changes of rows whose columns differ. Tables of the cache not
 * named in either are left alone.
 */
export function reconcile<T extends string>(cache: TableCache, snapshot: TableUpdates, tables: Iterable<string> = []): RowChange<T>[] {
  const changes: RowChange<T>[] = [];
  for (const table of new Set([...tables, ...Object.keys(snapshot)])) {
    const rowsOf = tableOf(cache, table);
    const fresh = snapshot[table] ?? {};
    for (const [uuid, old] of [...rowsOf]) {
      if (fresh[uuid]?.new != null) continue;
      rowsOf.delete(uuid);
      changes.push({ kind: ChangeKind.Removed, table: table as T, uuid, old });
    }
    for (const [uuid, u] of Object.entries(fresh)) {
      if (u.new == null) continue;
      const row: Row = { ...u.new };
      const before = rowsOf.get(uuid);
      rowsOf.set(uuid, row);
      if (before === undefined) changes.push({ kind: ChangeKind.Added, table: table as T, uuid, row });
      else if (!sameRow(before, row)) changes.push({ kind: ChangeKind.Changed, table: table as T, uuid, row, old: before });
    }
  }
  return changes;
}

/** Whether two rows hold equal values in every column (column order does not matter). */
export function sameRow(a: Row, b: Row): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (Array.isArray(b)) return false;
  return sameRow(a as Row, b as Row);
}

function tableOf(cache: TableCache, table: string): Map<string, Row> {
  let rows = cache.get(table);
  if (!rows) cache.set(table, (rows = new Map()));
  return rows;
}
