// Unit tests of the /proc/net/route reader: the parse, and the marker-route check that scans rather than parses.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { holdsRoutes, parseProcRoutes } from "../../lib/host/routes.ts";

/** /proc/net/route as the kernel prints it (tabs, a padded last column): a default route, the marker, 1,000 peer routes. */
const TEXT = [
  "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT          ",
  "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0                                ",
  "ovsplane-gw\t0000F40A\t00000000\t0001\t0\t0\t1005\t00FCFFFF\t0\t0\t0                      ",
  ...Array.from({ length: 1000 }, (_, i) => `ovsplane-gw\t00${(i & 255).toString(16).padStart(2, "0").toUpperCase()}${((i >> 8) + 1).toString(16).padStart(2, "0").toUpperCase()}0A\t00000000\t0001\t0\t0\t1005\t00FFFFFF\t0\t0\t0   `),
].join("\n");

test("parseProcRoutes: device, destination with prefix, metric", () => {
  const r = parseProcRoutes(TEXT);
  assert.is(r.length, 1002);
  assert.equal(r[0], { dev: "eth0", dst: "0.0.0.0/0", metric: 0 });
  assert.equal(r[1], { dev: "ovsplane-gw", dst: "10.244.0.0/22", metric: 1005 });
  assert.equal(r[2], { dev: "ovsplane-gw", dst: "10.1.0.0/24", metric: 1005 });
});

test("holdsRoutes: the marker route is found by device, metric, destination and prefix", () => {
  assert.ok(holdsRoutes(TEXT, "ovsplane-gw", 1005, ["10.244.0.0/22"]));
  assert.ok(holdsRoutes(TEXT, "ovsplane-gw", 1005, ["10.244.0.0/22", "10.4.231.0/24"]), "the last peer route too");
  assert.ok(holdsRoutes(TEXT, "ovsplane-gw", 1005, []));
});

test("holdsRoutes: another metric, prefix, device or a missing destination is not the route", () => {
  assert.not.ok(holdsRoutes(TEXT, "ovsplane-gw", 1006, ["10.244.0.0/22"]), "metric");
  assert.not.ok(holdsRoutes(TEXT, "ovsplane-gw", 1005, ["10.244.0.0/24"]), "prefix");
  assert.not.ok(holdsRoutes(TEXT, "eth0", 1005, ["10.244.0.0/22"]), "device");
  assert.not.ok(holdsRoutes(TEXT, "ovsplane-gw", 1005, ["10.244.0.0/22", "10.245.0.0/16"]), "one of two missing");
  assert.not.ok(holdsRoutes("", "ovsplane-gw", 1005, ["10.244.0.0/22"]), "no table");
});

test.run();
