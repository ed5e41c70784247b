// Integration test of OvsdbSession on a simulated node: port events, and an ovsdb-server crash + restart survived.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../lib/host/exec.ts";
import { watchOvsdb, type OvsdbSession, type RowChange } from "../../lib/ovs/ovsdb-monitor.ts";
import { DATABASE, connect } from "../../lib/ovs/ovsdb.ts";
import { createNode, pidAlive, sleep, teardownAll, type SimNode } from "../harness/testbed.ts";
import { expectCode } from "../unit/helpers.ts";

type Table = "Port" | "Interface";
const t = suite("ovsdb-monitor");
const BR = "br-mon";
let N: SimNode;
let session: OvsdbSession<Table> | undefined;
const events: string[] = [];
const stamps: { what: string; at: number }[] = [];
let attempts = 0;

function record(what: string): void {
  events.push(what);
  stamps.push({ what, at: Date.now() });
}
const rowEvent = (c: RowChange<Table>) => record(`${c.kind} ${c.table} ${String((c.row ?? c.old)?.name)}`);

/** Waits until `what` has been recorded (after index `from`), or fails after timeoutMs. */
async function seen(what: string, timeoutMs = 15_000, from = 0): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const i = events.indexOf(what, from);
    if (i >= 0) return stamps[i]!.at;
    if (Date.now() > until) throw new assert.Assertion({ message: `never saw "${what}"; events: ${JSON.stringify(events)}`, expects: what, actual: events, operator: "includes" });
    await sleep(10);
  }
}

t.before(async () => {
  N = await createNode({ name: "mon", underlayIP: "198.18.7.1" });
  await N.vsctl("add-br", BR, "--", "set", "bridge", BR, "datapath_type=netdev");
  await N.vsctl("add-port", BR, "keep0", "--", "set", "interface", "keep0", "type=internal");
});

t.after(async () => {
  session?.close();
  await teardownAll();
});

t("a session sees the initial rows, then a port added and deleted with ovs-vsctl", async () => {
  session = watchOvsdb<Table>(N.ovsdbSocket, { Port: { columns: ["name", "interfaces"] }, Interface: { columns: ["name", "type"] } }, {
    connected: (i) => {
      attempts = i.attempts;
      record(`connected reconnect=${i.reconnect}`);
    },
    disconnected: () => record("disconnected"),
    added: rowEvent,
    changed: rowEvent,
    removed: rowEvent,
    error: () => undefined, // refused connections while the server is down
  }, { minBackoffMs: 100, maxBackoffMs: 5000 });
  await session.whenConnected(5000);
  await seen("added Port keep0");
  await seen("added Interface keep0");
  await seen(`added Port ${BR}`);
  assert.is(events[0], "connected reconnect=false");
  assert.ok([...session.rows("Port").values()].some((r) => r.name === "keep0"));

  const from = events.length;
  await N.vsctl("add-port", BR, "mon1", "--", "set", "interface", "mon1", "type=internal");
  await seen("added Port mon1", 5000, from);
  await seen("added Interface mon1", 5000, from);
  await N.vsctl("del-port", BR, "mon1");
  await seen("removed Port mon1", 5000, from);
  await seen("removed Interface mon1", 5000, from);
  assert.not.ok([...session.rows("Port").values()].some((r) => r.name === "mon1"));

  // transact goes through the session's connection.
  const [sel] = await session.transact([{ op: "select", table: "Port", where: [["name", "==", "keep0"]], columns: ["name"] }]);
  assert.is(sel.rows.length, 1);
});

t("ovsdb-server killed and restarted: disconnected, reconnected, deletion while down and a new port reported", async () => {
  assert.ok(session?.connected);
  const s = session!;
  const from = events.length;
  const pid = Number(readFileSync(join(N.runDir, "ovsdb.pid"), "utf8").trim());
  const killedAt = Date.now();
  process.kill(pid, "SIGKILL");
  const downAt = await seen("disconnected", 5000, from);
  for (let i = 0; i < 100 && pidAlive(pid); i++) await sleep(20);
  assert.not.ok(s.connected);
  await expectCode(s.transact([]), 11);

  // While the server is down, delete keep0 straight in the database file (as an offline ovsdb-tool edit would).
  const uuidOf = (name: string) => [...s.rows("Port")].find(([, r]) => r.name === name)![0];
  const ifUuid = [...s.rows("Interface")].find(([, r]) => r.name === "keep0")![0];
  await run(["ovsdb-tool", "transact", join(N.runDir, "conf.db"), JSON.stringify([DATABASE,
    { op: "mutate", table: "Bridge", where: [["name", "==", BR]], mutations: [["ports", "delete", ["set", [["uuid", uuidOf("keep0")]]]]] },
    { op: "delete", table: "Port", where: [["_uuid", "==", ["uuid", uuidOf("keep0")]]] },
    { op: "delete", table: "Interface", where: [["_uuid", "==", ["uuid", ifUuid]]] },
  ])]);
  // Let the session back off a few times before the server comes back.
  await sleep(1500);
  const restartAt = Date.now();
  await N.startOvsdb();
  const upAt = Date.now();
  const connectedAt = await seen("connected reconnect=true", 10_000, from);
  await seen("removed Port keep0", 1000, from);
  await seen("removed Interface keep0", 1000, from);
  const afterReconnect = events.slice(from);
  assert.not.ok(afterReconnect.some((e) => e.startsWith("added")), `no row came back twice: ${JSON.stringify(afterReconnect)}`);

  const from2 = events.length;
  await N.vsctl("--no-wait", "add-port", BR, "mon2", "--", "set", "interface", "mon2", "type=internal");
  await seen("added Port mon2", 5000, from2);
  await seen("added Interface mon2", 5000, from2);
  assert.ok(s.connected);
  const names = [...s.rows("Port").values()].map((r) => r.name).sort();
  assert.equal(names, [BR, "mon2"]);

  // The cache equals a fresh read of the database.
  const c = await connect(N.ovsdbSocket);
  try {
    const [sel] = await c.transact([{ op: "select", table: "Port", where: [], columns: ["_uuid"] }]);
    assert.equal(sel.rows.map((r: any) => r._uuid[1]).sort(), [...s.rows("Port").keys()].sort());
  } finally {
    c.close();
  }
  console.log(`    kill -> disconnected ${downAt - killedAt} ms; ovsdb-server start took ${upAt - restartAt} ms; ` +
    `server up -> session reconnected ${connectedAt - upAt} ms, ${connectedAt - downAt} ms after the disconnect, at attempt ${attempts} ` +
    `(backoff 100 ms doubling to 5 s; server down ${restartAt - downAt} ms)`);
});

t("close() stops the session for good", async () => {
  const s = session!;
  s.close();
  const from = events.length;
  assert.not.ok(s.connected);
  await expectCode(s.transact([]), 11);
  await N.vsctl("--no-wait", "add-port", BR, "mon3", "--", "set", "interface", "mon3", "type=internal");
  await sleep(300);
  assert.equal(events.slice(from), []);
});

t.run();
