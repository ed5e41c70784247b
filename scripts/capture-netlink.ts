// Captures the rtnetlink bytes iproute2 sends and the kernel answers (strace) into test/unit/fixtures/netlink.json.
// Run as root from the repository: node_modules/.bin/tsx scripts/capture-netlink.ts (scratch namespaces nlcap-host-<pid>, nlcap-pod-<pid>).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

/** One netlink syscall of a traced command: direction and the bytes of its buffer. */
interface Io {
  dir: "send" | "recv";
  hex: string;
}

const host = `nlcap-host-${process.pid}`;
const pod = `nlcap-pod-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), "nlcap-"));

/** The netlink sends and receives (with data) of one command, from strace's hex dumps. */
function traced(argv: string[]): Io[] {
  const out = join(dir, "trace");
  // A failing command (linkDelMissing) is captured too: its error answer is the point.
  spawnSync("strace", ["-f", "-e", "trace=sendmsg,sendto,recvmsg", "-e", "write=all", "-e", "read=all", "-o", out, ...argv], { stdio: "ignore" });
  const ios: Io[] = [];
  let cur: Io | undefined;
  for (const line of readFileSync(out, "utf8").split("\n")) {
    const call = /^\d+\s+(sendmsg|sendto|recvmsg)\(/.exec(line);
    if (call) {
      cur = { dir: call[1] === "recvmsg" ? "recv" : "send", hex: "" };
      ios.push(cur);
      continue;
    }
    const dump = /^ \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}){1,16})/.exec(line);
    if (dump && cur) cur.hex += dump[1]!.replace(/\s+/g, "");
  }
  return ios.filter((i) => i.hex);
}

const sh = (...a: string[]) => execFileSync(a[0]!, a.slice(1), { stdio: "inherit" });
const fixtures: Record<string, { argv: string[]; io: Io[] }> = {};
const cap = (name: string, argv: string[]) => (fixtures[name] = { argv, io: traced(argv) });

try {
  sh("ip", "netns", "add", host);
  sh("ip", "netns", "add", pod);
  sh("ip", "-n", host, "link", "add", "gw0", "type", "veth", "peer", "name", "gw0p");
  const inHost = ["nsenter", `--net=/var/run/netns/${host}`];
  cap("vethCreate", [...inHost, "ip", "link", "add", "nlh0", "address", "02:00:00:00:00:01", "mtu", "1450", "type", "veth", "peer", "name", "eth0", "address", "02:00:00:00:00:02", "mtu", "1450", "netns", `/var/run/netns/${pod}`]);
  cap("setAlias", [...inHost, "ip", "link", "set", "dev", "nlh0", "alias", "ovsplane/podnet/c1/eth0"]);
  cap("hostUp", [...inHost, "ip", "link", "set", "dev", "nlh0", "up"]);
  cap("addrAdd", ["ip", "-n", pod, "addr", "add", "10.244.1.5/24", "dev", "eth0"]);
  cap("podUp", ["ip", "-n", pod, "link", "set", "dev", "eth0", "up"]);
  cap("routeDefault", ["ip", "-n", pod, "route", "add", "0.0.0.0/0", "via", "10.244.1.1", "dev", "eth0"]);
  cap("routeMtu", ["ip", "-n", pod, "route", "add", "10.244.2.0/24", "via", "10.244.1.1", "dev", "eth0", "mtu", "1400"]);
  cap("addrShow", ["ip", "-n", pod, "-j", "addr", "show", "dev", "eth0"]);
  cap("routeShow", ["ip", "-n", pod, "-j", "route", "show", "dev", "eth0"]);
  cap("vethList", [...inHost, "ip", "-j", "link", "show", "type", "veth"]);
  sh("ip", "-n", host, "link", "set", "gw0", "up");
  cap("gwAddrReplace", [...inHost, "ip", "addr", "replace", "10.244.1.1/24", "dev", "gw0"]);
  cap("gwRouteReplace", [...inHost, "ip", "route", "replace", "10.244.2.0/24", "dev", "gw0", "src", "10.244.1.1", "proto", "111", "metric", "1001"]);
  cap("gwRouteShow", [...inHost, "ip", "-j", "route", "show", "proto", "111"]);
  cap("gwRouteDel", [...inHost, "ip", "route", "del", "10.244.2.0/24", "dev", "gw0", "proto", "111", "metric", "1001"]);
  cap("gwAddrDel", [...inHost, "ip", "addr", "del", "10.244.1.1/24", "dev", "gw0"]);
  cap("linkDel", [...inHost, "ip", "link", "del", "dev", "nlh0"]);
  cap("linkDelMissing", [...inHost, "ip", "link", "del", "dev", "nlh0"]);
} finally {
  execFileSync("ip", ["netns", "del", host], { stdio: "ignore" });
  execFileSync("ip", ["netns", "del", pod], { stdio: "ignore" });
  rmSync(dir, { recursive: true, force: true });
}
writeFileSync("test/unit/fixtures/netlink.json", JSON.stringify(fixtures, null, 1) + "\n");
