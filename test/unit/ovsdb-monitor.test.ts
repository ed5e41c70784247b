// Unit tests of the OVSDB table cache and of OvsdbSession against a fake JSON-RPC server on a unix socket.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyUpdate, newCache, reconcile, sameRow, type RowChange } from "../../lib/ovs/ovsdb-cache.ts";
import { watchOvsdb } from "../../lib/ovs/ovsdb-monitor.ts";
import { connect, type Row, type TableUpdates } from "../../lib/ovs/ovsdb.ts";
import { expectCode } from "./helpers.ts";

const brief = (cs: RowChange[]) => cs.map((c) => `${c.kind} ${c.table} ${c.uuid}`);

test("applyUpdate: insert, modify (full and partial new), delete, unknown rows", () => {
  const cache = newCache(["Port"]);
  let cs = applyUpdate(cache, { Port: { u1: { new: { name: "p1", tag: 1 } }, u2: { new: { name: "p2", tag: ["set", []] } } } });
  assert.equal(brief(cs), ["added Port u1", "added Port u2"]);
  assert.equal(cache.get("Port")!.get("u1"), { name: "p1", tag: 1 });

  // RFC 7047 modify: old has the changed columns, new the whole row.
  cs = applyUpdate(cache, { Port: { u1: { old: { tag: 1 }, new: { name: "p1", tag: 2 } } } });
  assert.equal(brief(cs), ["changed Port u1"]);
  assert.equal(cs[0]!.old, { name: "p1", tag: 1 });
  assert.equal(cs[0]!.row, { name: "p1", tag: 2 });

  // A partial new is merged over the cached row.
  cs = applyUpdate(cache, { Port: { u2: { old: { tag: ["set", []] }, new: { tag: 7 } } } });
  assert.equal(cs[0]!.row, { name: "p2", tag: 7 });
  assert.equal(cache.get("Port")!.get("u2"), { name: "p2", tag: 7 });

  // A modify that changes nothing reports nothing.
  assert.equal(applyUpdate(cache, { Port: { u2: { old: {}, new: { tag: 7 } } } }), []);

  cs = applyUpdate(cache, { Port: { u1: { old: { name: "p1", tag: 2 } } }, Interface: { x: { old: { name: "gone" } } } });
  assert.equal(brief(cs), ["removed Port u1"]);
  assert.equal(cs[0]!.old, { name: "p1", tag: 2 });
  assert.not.ok(cache.get("Port")!.has("u1"));

  // A modify of an unknown row is an addition (and a new table appears on demand).
  cs = applyUpdate(cache, { Interface: { i9: { old: { a: 1 }, new: { a: 2 } } } });
  assert.equal(brief(cs), ["added Interface i9"]);
  assert.equal(cache.get("Interface")!.get("i9"), { a: 2 });
});

test("applyUpdate does not alias the update's row objects", () => {
  const cache = newCache();
  const row: Row = { name: "p" };
  applyUpdate(cache, { Port: { u: { new: row } } });
  row.name = "mutated";
  assert.is(cache.get("Port")!.get("u")!.name, "p");
});

test("reconcile: removals for vanished rows, additions for new ones, changes, other tables untouched", () => {
  const cache = newCache(["Port", "Interface", "Bridge"]);
  applyUpdate(cache, {
    Port: { a: { new: { name: "a" } }, b: { new: { name: "b", ifs: ["set", [["uuid", "1"]]] } }, c: { new: { name: "c" } } },
    Bridge: { br: { new: { name: "br-int" } } },
  });
  const snapshot: TableUpdates = { Port: { b: { new: { ifs: ["set", [["uuid", "1"]]], name: "b" } }, c: { new: { name: "c2" } }, d: { new: { name: "d" } } } };
  const cs = reconcile(cache, snapshot, ["Port", "Interface"]);
  assert.equal(brief(cs), ["removed Port a", "changed Port c", "added Port d"]);
  assert.equal(cs[1]!.old, { name: "c" });
  assert.equal([...cache.get("Port")!.keys()].sort(), ["b", "c", "d"]);
  assert.ok(cache.get("Bridge")!.has("br"), "a table outside the snapshot and the list is left alone");

  // A table listed but absent from the snapshot (no rows) is emptied.
  const cs2 = reconcile(cache, {}, ["Port"]);
  assert.equal(brief(cs2).sort(), ["removed Port b", "removed Port c", "removed Port d"]);
});

test("sameRow compares values deeply, ignoring column order", () => {
  assert.ok(sameRow({ a: ["map", [["k", "v"]]], b: 1 }, { b: 1, a: ["map", [["k", "v"]]] }));
  assert.not.ok(sameRow({ a: ["map", [["k", "v"]]] }, { a: ["map", [["k", "w"]]] }));
  assert.not.ok(sameRow({ a: 1 }, { a: 1, b: 2 }));
  assert.not.ok(sameRow({ a: [1] }, { a: { 0: 1 } }));
});

/** A fake ovsdb-server: answers monitor (from `rows`), echo and transact; pushes updates; can go away and come back. */
class FakeServer {
  rows: Record<string, Record<string, Row>> = { Port: {} };
  private server: Server | null = null;
  private readonly conns = new Set<Socket>();
  private readonly monitors = new Map<Socket, unknown>();
  muteEcho = false;
  constructor(readonly path: string) {}

  start(): Promise<void> {
    this.server = createServer((s) => {
      this.conns.add(s);
      s.on("close", () => (this.conns.delete(s), this.monitors.delete(s)));
      let buf = "";
      s.on("data", (d) => {
        buf += d.toString();
        // The client writes one compact JSON text per message; they may arrive glued together.
        for (let m = buf.match(/^\{.*?\}(?=\{|$)/); m; m = buf.match(/^\{.*?\}(?=\{|$)/)) {
          buf = buf.slice(m[0].length);
          this.handle(s, JSON.parse(m[0]));
        }
      });
    });
    return new Promise((resolve) => this.server!.listen(this.path, resolve));
  }

  private handle(s: Socket, msg: { id: number; method: string; params: unknown[] }): void {
    if (msg.method === "monitor") {
      const [, id, reqs] = msg.params as [string, unknown, Record<string, unknown>];
      this.monitors.set(s, id);
      const initial: TableUpdates = {};
      for (const t of Object.keys(reqs)) {
        initial[t] = Object.fromEntries(Object.entries(this.rows[t] ?? {}).map(([u, r]) => [u, { new: r }]));
      }
      s.write(JSON.stringify({ id: msg.id, result: initial, error: null }));
    } else if (msg.method === "echo") {
      if (!this.muteEcho) s.write(JSON.stringify({ id: msg.id, result: msg.params, error: null }));
    } else {
      s.write(JSON.stringify({ id: msg.id, result: [{}], error: null }));
    }
  }

  /** Changes a row (undefined deletes) and notifies the monitors. */
  set(table: string, uuid: string, row: Row | undefined): void {
    const old = this.rows[table]?.[uuid];
    this.rows[table] ??= {};
    if (row) this.rows[table]![uuid] = row;
    else delete this.rows[table]![uuid];
    const u = { ...(old ? { old } : {}), ...(row ? { new: row } : {}) };
    for (const [s, id] of this.monitors) s.write(JSON.stringify({ method: "update", params: [id, { [table]: { [uuid]: u } }], id: null }));
  }

  async stop(): Promise<void> {
    const closed = new Promise((r) => this.server?.close(r));
    for (const c of this.conns) c.destroy();
    await closed;
    this.server = null;
  }
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("session: initial rows, live updates, reconnect with reconciliation, transact, close", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ovsplane-fake-ovsdb-"));
  const fake = new FakeServer(join(dir, "db.sock"));
  const events: string[] = [];
  fake.rows.Port = { a: { name: "a" }, b: { name: "b" } };
  await fake.start();
  const s = watchOvsdb(`unix:${fake.path}`, ["Port"], {
    connected: (i) => events.push(`connected reconnect=${i.reconnect}`),
    disconnected: () => events.push("disconnected"),
    added: (c) => events.push(`added ${c.uuid}`),
    changed: (c) => events.push(`changed ${c.uuid} ${c.row!.name}`),
    removed: (c) => events.push(`removed ${c.uuid}`),
    error: () => undefined,
  }, { minBackoffMs: 20, maxBackoffMs: 80, probeIntervalMs: 0 });
  try {
    await s.whenConnected(2000);
    assert.equal(events.splice(0), ["connected reconnect=false", "added a", "added b"]);
    assert.equal([...s.rows("Port").keys()], ["a", "b"]);
    assert.equal(await s.transact([{ op: "comment", comment: "x" }]), [{}]);

    fake.set("Port", "c", { name: "c" });
    fake.set("Port", "a", { name: "a2" });
    await until(() => events.length >= 2, "live updates");
    assert.equal(events.splice(0), ["added c", "changed a a2"]);

    await fake.stop();
    await until(() => !s.connected, "disconnect");
    assert.equal(events.splice(0), ["disconnected"]);
    await expectCode(s.transact([]), 11, /disconnected, reconnecting/);
    // While down: b is deleted, d is added, c changes. The server stays away for a few backoff rounds.
    fake.rows.Port = { a: { name: "a2" }, c: { name: "c3" }, d: { name: "d" } };
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await fake.start();
    await s.whenConnected(2000);
    const took = Date.now() - t0;
    assert.ok(took <= 200, `reconnected ${took} ms after the server came back (backoff is capped at 80 ms)`);
    assert.equal(events.splice(0), ["connected reconnect=true", "removed b", "changed c c3", "added d"]);
    assert.equal([...s.rows("Port").keys()].sort(), ["a", "c", "d"]);
  } finally {
    s.close();
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  await expectCode(s.transact([]), 11, /closed/);
  await expectCode(s.whenConnected(), 11, /closed/);
  assert.equal(events, []);
});

test("client: monitor hands the initial state to the callback first, then updates, until monitorCancel", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ovsplane-fake-ovsdb-"));
  const fake = new FakeServer(join(dir, "db.sock"));
  fake.rows.Port = { a: { name: "a" } };
  await fake.start();
  const c = await connect(`unix:${fake.path}`);
  try {
    const seen: [TableUpdates, boolean][] = [];
    const initial = await c.monitor("m", { Port: { columns: ["name"] } }, (u, i) => seen.push([u, i]));
    assert.equal(initial, { Port: { a: { new: { name: "a" } } } });
    assert.equal(seen, [[initial, true]]);
    await expectCode(c.monitor("m", { Port: {} }, () => undefined), 100, /duplicate monitor ID/);
    fake.set("Port", "b", { name: "b" });
    await until(() => seen.length === 2, "update");
    assert.equal(seen[1], [{ Port: { b: { new: { name: "b" } } } }, false]);
    await c.monitorCancel("m");
    fake.set("Port", "c", { name: "c" });
    await c.echo();
    assert.is(seen.length, 2);
  } finally {
    c.close();
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(await c.whenClosed().then((e) => e.code), 11);
  assert.not.ok(c.isOpen);
});

test("session: an unanswered echo probe drops the connection and the session reconnects", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ovsplane-fake-ovsdb-"));
  const fake = new FakeServer(join(dir, "db.sock"));
  await fake.start();
  let connects = 0, disconnects = 0;
  const s = watchOvsdb(`unix:${fake.path}`, { Port: { columns: ["name"] } }, {
    connected: () => connects++,
    disconnected: () => disconnects++,
    error: () => undefined,
  }, { minBackoffMs: 10, probeIntervalMs: 30, timeoutMs: 50 });
  try {
    await s.whenConnected(2000);
    fake.muteEcho = true;
    await until(() => disconnects === 1, "probe failure");
    fake.muteEcho = false;
    await until(() => connects === 2, "reconnect");
  } finally {
    s.close();
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("session: nothing listening: whenConnected times out with code 11, close() ends the retries", async () => {
  let errors = 0;
  const s = watchOvsdb("unix:/nonexistent/ovsplane/db.sock", ["Port"], { error: () => errors++ }, { minBackoffMs: 5, maxBackoffMs: 20 });
  await expectCode(s.whenConnected(150), 11, /not connected within 150 ms/);
  s.close();
  const n = errors;
  assert.ok(n >= 3, `${n} attempts in 150 ms`);
  await new Promise((r) => setTimeout(r, 60));
  assert.is(errors, n, "no attempt after close()");
});

test.run();
