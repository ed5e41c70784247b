// Integration tests of lib/ovsdb.ts against a private ovsdb-server (and ovs-vswitchd for cur_cfg).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../../lib/host/exec.ts";
import { expectCode } from "../unit/helpers.ts";
import { addNetns, delNetns, nsExec, uniqueNsName, unregisterRun } from "../harness/netns.ts";
import {
  connect, mapToObject, namedUuid, ovsMap, ovsSet, OvsdbError, setToArray, uuid, uuidOf, waitForCurCfg, type OvsdbClient,
} from "../../lib/ovs/ovsdb.ts";

const t = suite<{ dir: string; db: string; ns?: string; setupError?: unknown }>("ovsdb", { dir: "", db: "" });
const open: OvsdbClient[] = [];

async function client(db: string): Promise<OvsdbClient> {
  const c = await connect(db);
  open.push(c);
  return c;
}

function pidOf(dir: string, name: string): number | undefined {
  try {
    return Number(readFileSync(join(dir, `${name}.pid`), "utf8").trim()) || undefined;
  } catch {
    return undefined;
  }
}

function signal(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Running (not gone, not a zombie: detached daemons are reaped late by PID 1 here). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}


// uvu swallows an error thrown by before(): keep it and fail every test with it instead.
t.before(async (ctx) => {
  try {
    ctx.dir = mkdtempSync(join(tmpdir(), "ovsplane-ovsdb-"));
    // Safety net: uvu skips after() when the process ends early (event loop drained, exit()).
    const dir = ctx.dir;
    process.once("exit", () => {
      if (!existsSync(dir)) return;
      for (const name of ["vswitchd", "ovsdb"]) for (const sig of ["SIGCONT", "SIGTERM"] as const) signal(pidOf(dir, name), sig);
      rmSync(dir, { recursive: true, force: true });
    });
    ctx.db = `unix:${ctx.dir}/db.sock`;
    const d = ctx.dir;
    // ovs-vswitchd in a namespace of its own: the netdev datapath's taps (ovs-netdev, the test bridge's) stay
    // behind when it exits, and go with the namespace.
    ctx.ns = uniqueNsName("ovsdb");
    await addNetns(ctx.ns);
    const env = { OVS_RUNDIR: d };
    await run(["ovsdb-tool", "create", `${d}/conf.db`, "/usr/share/openvswitch/vswitch.ovsschema"]);
    // The manager_options remote lets a test open a listener with an inactivity probe.
    await run(["ovsdb-server", `${d}/conf.db`, `--remote=punix:${d}/db.sock`, "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
      `--unixctl=${d}/ovsdb.ctl`, `--pidfile=${d}/ovsdb.pid`, "--detach", `--log-file=${d}/ovsdb.log`], { env });
    await run(["ovs-vsctl", `--db=${ctx.db}`, "--no-wait", "init"], { env });
    await nsExec(ctx.ns, ["ovs-vswitchd", ctx.db, `--unixctl=${d}/vswitchd.ctl`, `--pidfile=${d}/vswitchd.pid`, "--detach",
      `--log-file=${d}/vswitchd.log`], { env });
  } catch (e) {
    ctx.setupError = e;
  }
});

t.before.each((ctx) => {
  if (ctx.setupError) throw ctx.setupError;
});

t.after.each(() => {
  for (const c of open.splice(0)) c.close();
});

t.after(async (ctx) => {
  if (!ctx.dir) return;
  for (const name of ["vswitchd", "ovsdb"]) {
    const pid = pidOf(ctx.dir, name);
    signal(pid, "SIGCONT");
    signal(pid, "SIGTERM");
    for (let i = 0; pid && alive(pid) && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    signal(pid, "SIGKILL");
  }
  rmSync(ctx.dir, { recursive: true, force: true });
  if (ctx.ns) await delNetns(ctx.ns);
  unregisterRun();
});

t("value helpers build and read OVSDB values", () => {
  assert.equal(ovsMap({ a: "1", b: "2" }), ["map", [["a", "1"], ["b", "2"]]]);
  assert.equal(ovsSet([1, 2]), ["set", [1, 2]]);
  assert.equal(uuid("u"), ["uuid", "u"]);
  assert.equal(namedUuid("n"), ["named-uuid", "n"]);
  assert.equal(mapToObject(["map", [["k", "v"]]]), { k: "v" });
  assert.equal(mapToObject(["map", []]), {});
  assert.throws(() => mapToObject("x"), TypeError);
  assert.equal(setToArray(["set", []]), []);
  assert.equal(setToArray(["set", [1, 2]]), [1, 2]);
  assert.equal(setToArray(["uuid", "u"]), [["uuid", "u"]]);
  assert.equal(setToArray(7), [7]);
  assert.is(uuidOf(["uuid", "u"]), "u");
  assert.throws(() => uuidOf(["named-uuid", "u"]), TypeError);
});

t("transact: insert, select, mutate, delete round-trip (QoS, a root table)", async ({ db }) => {
  const c = await client(db);
  const [ins] = await c.transact([
    { op: "insert", table: "QoS", row: { type: "linux-htb", external_ids: ovsMap({ owner: "ovsplane", "é": "ü" }) }, "uuid-name": "i" },
  ]);
  const id = uuidOf(ins.uuid);
  assert.match(id, /^[0-9a-f-]{36}$/);

  const [sel] = await c.transact([{ op: "select", table: "QoS", where: [["_uuid", "==", uuid(id)]], columns: ["type", "external_ids"] }]);
  assert.is(sel.rows.length, 1);
  assert.is(sel.rows[0].type, "linux-htb");
  assert.equal(mapToObject(sel.rows[0].external_ids), { owner: "ovsplane", "é": "ü" });

  const [mut] = await c.transact([
    { op: "mutate", table: "QoS", where: [["_uuid", "==", uuid(id)]], mutations: [["external_ids", "insert", ovsMap({ pod: "ns/p" })]] },
  ]);
  assert.is(mut.count, 1);
  const [sel2] = await c.transact([{ op: "select", table: "QoS", where: [["_uuid", "==", uuid(id)]], columns: ["external_ids"] }]);
  assert.equal(mapToObject(sel2.rows[0].external_ids), { owner: "ovsplane", "é": "ü", pod: "ns/p" });

  // A big reply arrives in many chunks.
  const big = "x".repeat(200_000);
  await c.transact([{ op: "update", table: "QoS", where: [["_uuid", "==", uuid(id)]], row: { external_ids: ovsMap({ big }) } }]);
  const [sel3] = await c.transact([{ op: "select", table: "QoS", where: [["_uuid", "==", uuid(id)]], columns: ["external_ids"] }]);
  assert.is(mapToObject(sel3.rows[0].external_ids).big, big);

  const [del] = await c.transact([{ op: "delete", table: "QoS", where: [["_uuid", "==", uuid(id)]] }]);
  assert.is(del.count, 1);
  const [sel4] = await c.transact([{ op: "select", table: "QoS", where: [["_uuid", "==", uuid(id)]] }]);
  assert.is(sel4.rows.length, 0);
});

t("a failing operation throws OvsdbError with its index, unless allowErrors", async ({ db }) => {
  const c = await client(db);
  const ops = [
    { op: "select", table: "Bridge", where: [] },
    { op: "insert", table: "Bridge", row: { no_such_column: 1 } },
  ];
  const err = await expectCode(c.transact(ops), 100, /operation 1 \(insert Bridge\)/);
  assert.instance(err, OvsdbError);
  assert.is((err as OvsdbError).index, 1);
  assert.is((err as OvsdbError).error, "unknown column");
  assert.ok(err.details.length > 0);

  const res = await c.transact(ops, { allowErrors: true });
  assert.is(res[1].error, "unknown column");

  // Commit-time error: a Port that no Bridge references is garbage-collected, but a Port must name
  // existing interfaces: a dangling strong reference fails the commit (index === ops.length).
  const commit = await expectCode(
    c.transact([{ op: "insert", table: "Port", row: { name: "p", interfaces: uuid("00000000-0000-0000-0000-000000000000") } }]),
    100,
  );
  assert.is((commit as OvsdbError).index, 1);
  assert.is((commit as OvsdbError).error, "referential integrity violation");

  // The connection is still usable.
  const [sel] = await c.transact([{ op: "select", table: "Open_vSwitch", where: [], columns: ["next_cfg"] }]);
  assert.is(sel.rows.length, 1);
});

t("lock: the second client gets it only after the first closes its connection", async ({ db }) => {
  const a = await client(db);
  const b = await client(db);
  await a.lock("ovsplane_test");
  assert.ok(a.holds("ovsplane_test"));

  // Contended with a short timeout: code 11, and the queued request is withdrawn.
  const t0 = Date.now();
  await expectCode(b.lock("ovsplane_test", 150), 11, /held by another client/);
  assert.ok(Date.now() - t0 < 1000);

  let got = false;
  const waiting = b.lock("ovsplane_test", 3000).then(() => (got = true));
  await new Promise((r) => setTimeout(r, 200));
  assert.not.ok(got, "b must wait while a holds the lock");
  a.close();
  await waiting;
  assert.ok(got);
  assert.ok(b.holds("ovsplane_test"));

  // unlock() lets a third client take it at once.
  const c = await client(db);
  const cWaiting = c.lock("ovsplane_test", 3000);
  await b.unlock("ovsplane_test");
  await cWaiting;
  assert.ok(c.holds("ovsplane_test"));
});

t("waitForCurCfg: ovs-vswitchd applies a new netdev bridge", async ({ db }) => {
  const c = await client(db);
  const br = `brt${process.pid % 100000}`;
  const res = await c.transact([
    { op: "insert", table: "Interface", row: { name: br, type: "internal" }, "uuid-name": "iface" },
    { op: "insert", table: "Port", row: { name: br, interfaces: namedUuid("iface") }, "uuid-name": "port" },
    { op: "insert", table: "Bridge", row: { name: br, ports: namedUuid("port"), datapath_type: "netdev" }, "uuid-name": "br" },
    { op: "mutate", table: "Open_vSwitch", where: [], mutations: [["bridges", "insert", ovsSet([namedUuid("br")])], ["next_cfg", "+=", 1]] },
    { op: "select", table: "Open_vSwitch", where: [], columns: ["next_cfg"] },
  ]);
  const nextCfg = res[4].rows[0].next_cfg as number;
  const t0 = Date.now();
  await waitForCurCfg(c, nextCfg, 5000);
  const took = Date.now() - t0;
  const [sel] = await c.transact([{ op: "select", table: "Interface", where: [["name", "==", br]], columns: ["ofport"] }]);
  assert.is(setToArray(sel.rows[0].ofport)[0], 65534, "vswitchd gave the bridge's internal port OFPP_LOCAL");
  console.log(`    cur_cfg reached ${nextCfg} after ${took} ms`);

  // Asking for a configuration that never comes: code 11 naming ovs-vswitchd.
  await expectCode(waitForCurCfg(c, nextCfg + 1000, 100), 11, /ovs-vswitchd is not available.*within 100 ms/);

  // Remove the bridge again (its tap device goes with it).
  const [bsel] = await c.transact([{ op: "select", table: "Bridge", where: [["name", "==", br]], columns: ["_uuid"] }]);
  const res2 = await c.transact([
    { op: "mutate", table: "Open_vSwitch", where: [], mutations: [["bridges", "delete", bsel.rows[0]._uuid], ["next_cfg", "+=", 1]] },
    { op: "select", table: "Open_vSwitch", where: [], columns: ["next_cfg"] },
  ]);
  await waitForCurCfg(c, res2[1].rows[0].next_cfg, 5000);
});

t("a missing socket fails at once, a refused port after its timeout (a busy server's backlog), both with code 11", async ({ dir }) => {
  const t0 = Date.now();
  await expectCode(connect(`unix:${dir}/nope.sock`, { timeoutMs: 5000 }), 11, /OVSDB at unix:.*nope\.sock is not available/);
  assert.ok(Date.now() - t0 < 5000, "a missing socket is not waited for");
  await expectCode(connect("tcp:127.0.0.1:1", { timeoutMs: 300 }), 11, /ECONNREFUSED/);
  await expectCode(connect("ssl:1.2.3.4:6640"), 7, /unix:PATH or tcp:HOST:PORT/);
});

t("a stopped server: request and lock time out with code 11", async ({ dir, db }) => {
  const pid = pidOf(dir, "ovsdb");
  assert.ok(pid);
  const c = await client(db);
  signal(pid, "SIGSTOP");
  try {
    let t0 = Date.now();
    await expectCode(c.transact([{ op: "select", table: "Open_vSwitch", where: [] }], { timeoutMs: 200 }), 11, /no reply to "transact" within 200 ms/);
    assert.ok(Date.now() - t0 < 600, `took ${Date.now() - t0} ms`);
    t0 = Date.now();
    await expectCode(c.lock("ovsplane_test", 200), 11);
    // The kernel accepts unix connections for a stopped server; the first request then times out.
    const d = await client(db);
    await expectCode(waitForCurCfg(d, 1, 200), 11);
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
  } finally {
    signal(pid, "SIGCONT");
  }
  // The same connection works again once the server runs (late replies are ignored).
  const [sel] = await c.transact([{ op: "select", table: "Open_vSwitch", where: [], columns: ["cur_cfg"] }]);
  assert.is(sel.rows.length, 1);
});

t("echo: the client answers the server's inactivity probes", async ({ dir, db }) => {
  const c = await client(db);
  const probe = `${dir}/probe.sock`;
  await c.transact([
    { op: "insert", table: "Manager", row: { target: `punix:${probe}`, inactivity_probe: 1000 }, "uuid-name": "m" },
    { op: "mutate", table: "Open_vSwitch", where: [], mutations: [["manager_options", "insert", namedUuid("m")]] },
  ]);
  for (let i = 0; i < 200 && !existsSync(probe); i++) await new Promise((r) => setTimeout(r, 10));
  const p = await client(`unix:${probe}`);
  await new Promise((r) => setTimeout(r, 200));
  // Control, connected 200 ms after p: a connection that never answers echo is dropped (~3 s here).
  const mute = createConnection(probe);
  const t0 = Date.now();
  const muteClosed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the mute connection was not dropped within 6 s")), 6000);
    mute.on("data", () => undefined).on("error", () => undefined).on("close", () => resolve(clearTimeout(timer)));
  });
  await muteClosed;
  assert.ok(Date.now() - t0 > 1000);
  const [sel] = await p.transact([{ op: "select", table: "Open_vSwitch", where: [], columns: ["cur_cfg"] }]);
  assert.is(sel.rows.length, 1);
});

t("calls after close() fail with code 11", async ({ db }) => {
  const c = await client(db);
  c.close();
  c.close();
  await expectCode(c.transact([]), 11, /closed/);
});

t.run();
