// The on-disk lease store, byte-compatible with host-local: one O_EXCL file per leased IP under <dataDir>/<network>/.
// Synchronous system calls: a CNI call has nothing to do meanwhile, and each async one costs a thread-pool round trip.
import {
  accessSync as access, closeSync, constants as fsc, mkdirSync as mkdir, openSync, readdirSync as readdir, readFileSync as readFile,
  renameSync as rename, statSync as stat, unlinkSync as unlink, writeFileSync as writeFile, writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { CniError, Code, invalidConfig, invalidEnv, messageOf } from "../cni/errors.ts";
import { ID_PATTERN } from "../cni/names.ts";
import { IpAddress, tryParseIp } from "../net/ip.ts";

/** Separator between container ID and interface name in a lease file (host-local's LineBreak). */
export const LEASE_LINE_BREAK = "\r\n";

/** Prefix of the per-range-set round-robin cursor files. */
export const LAST_RESERVED_PREFIX = "last_reserved_ip.";

/** Name of the (empty) file host-local flock()s. */
export const LOCK_FILE = "lock";

/** Mode of lease files. */
export const LEASE_MODE = 0o600;

/** Who holds a lease; ifname is undefined for leases written by old host-local (container ID only). */
export interface LeaseOwner {
  containerID: string;
  ifname?: string;
}

/** A lease found on disk. */
export interface Lease {
  ip: IpAddress;
  /** Full path of the lease file. */
  path: string;
  /** undefined when the file was empty (being written, or left by a crash). */
  owner?: LeaseOwner;
  /** Modification time in ms since the epoch. */
  mtimeMs: number;
}

/** Exactly what host-local writes: `<containerID>\r\n<ifname>`, no trailing newline. */
export function leaseContent(containerID: string, ifname: string): string {
  return `${containerID}${LEASE_LINE_BREAK}${ifname}`;
}

/** Reads a lease file's bytes (surrounding whitespace trimmed, like host-local's TrimSpace; no line-break folding). */
export function parseLeaseContent(data: Buffer): LeaseOwner | undefined {
  const text = data.toString("utf8").trim();
  if (text === "") return undefined;
  const i = text.indexOf(LEASE_LINE_BREAK);
  if (i < 0) return { containerID: text };
  return { containerID: text.slice(0, i), ifname: text.slice(i + LEASE_LINE_BREAK.length) };
}

/** True when a lease belongs to (containerID, ifname); legacy container-ID-only files match any ifname when legacy is set. */
export function ownedBy(owner: LeaseOwner | undefined, containerID: string, ifname: string, legacy = false): boolean {
  if (!owner || owner.containerID !== containerID) return false;
  return owner.ifname === ifname || (legacy && owner.ifname === undefined);
}

function unsafeName(value: string): boolean {
  return !ID_PATTERN.test(value) || value === "." || value === ".." || value.includes("/") || value.includes("..");
}

/** Refuses a network name that could escape the data directory. */
export function checkNetworkName(name: string): void {
  if (unsafeName(name)) throw invalidConfig("name", name, "must match [a-zA-Z0-9][a-zA-Z0-9_.-]* without \"..\"");
}

/** Refuses a container ID / ifname that could corrupt a lease file or escape paths. */
export function checkOwner(containerID: string, ifname: string): void {
  if (unsafeName(containerID)) throw invalidEnv("CNI_CONTAINERID", containerID, "must match [a-zA-Z0-9][a-zA-Z0-9_.-]* without \"..\"");
  if (!ifname || /[\s/:]/.test(ifname) || ifname === "." || ifname === "..") throw invalidEnv("CNI_IFNAME", ifname, "not a valid interface name");
}

function ioFailure(what: string, path: string, err: unknown): CniError {
  return new CniError(Code.IoFailure, `${what} ${path}: ${messageOf(err)}`, "", { cause: err });
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Options of LeaseStore. */
export interface StoreOptions {
  dataDir: string;
  network: string;
}

/** Runs a clean-up step whose failure changes nothing (the caller reports the first error). */
function quietly(fn: () => unknown): void {
  try {
    fn();
  } catch {
    // best effort
  }
}

/** The lease directory of one network. Reservation is the O_EXCL creation of the lease file, so no lock is needed. */
export class LeaseStore {
  /** `<dataDir>/<network>`. */
  readonly dir: string;

  constructor(readonly opts: StoreOptions) {
    checkNetworkName(opts.network);
    this.dir = join(opts.dataDir, opts.network);
  }

  /** Creates the directory (0755) and the empty lock file when missing. */
  async ensure(): Promise<void> {
    try {
      mkdir(this.dir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw ioFailure("cannot create lease directory", this.dir, e);
    }
    const lock = join(this.dir, LOCK_FILE);
    try {
      writeFile(lock, "", { flag: "wx", mode: 0o644 });
    } catch (e) {
      if (errno(e) !== "EEXIST") throw ioFailure("cannot create", lock, e);
    }
  }

  /** The path of the lease file of ip. */
  leasePath(ip: IpAddress): string {
    const p = join(this.dir, ip.toString());
    if (dirname(p) !== this.dir) throw new CniError(Code.IoFailure, `lease path ${p} escapes ${this.dir}`);
    return p;
  }

  /** Creates the lease file of ip with O_EXCL; false when it already exists (taken). */
  async reserve(ip: IpAddress, containerID: string, ifname: string): Promise<boolean> {
    checkOwner(containerID, ifname);
    const path = this.leasePath(ip);
    let fd: number;
    try {
      fd = openSync(path, "wx", LEASE_MODE);
    } catch (e) {
      if (errno(e) === "EEXIST") return false;
      throw ioFailure("cannot create lease", path, e);
    }
    try {
      writeSync(fd, leaseContent(containerID, ifname));
    } catch (e) {
      quietly(() => unlink(path));
      throw ioFailure("cannot write lease", path, e);
    } finally {
      quietly(() => closeSync(fd));
    }
    return true;
  }

  /** Removes the lease file of ip; false when it was not there. */
  async release(ip: IpAddress): Promise<boolean> {
    return this.removeFile(this.leasePath(ip));
  }

  /** Removes a file of this store; false when it was not there. */
  async removeFile(path: string): Promise<boolean> {
    try {
      unlink(path);
      return true;
    } catch (e) {
      if (errno(e) === "ENOENT") return false;
      throw ioFailure("cannot remove lease", path, e);
    }
  }

  /** Removes a lease file only when its current owner passes the test (re-read just before unlinking). */
  async removeIfOwned(path: string, test: (owner: LeaseOwner | undefined) => boolean): Promise<boolean> {
    if (!test(await this.ownerAt(path))) return false;
    return this.removeFile(path);
  }

  /** The owner written in ip's lease file, undefined when none or empty. */
  async ownerOf(ip: IpAddress): Promise<LeaseOwner | undefined> {
    return this.ownerAt(this.leasePath(ip));
  }

  private async ownerAt(path: string): Promise<LeaseOwner | undefined> {
    try {
      return parseLeaseContent(readFile(path));
    } catch (e) {
      if (errno(e) === "ENOENT") return undefined;
      throw ioFailure("cannot read lease", path, e);
    }
  }

  /** The last reserved IP of a range set, undefined when missing or unreadable. */
  async lastReserved(setIndex: number): Promise<IpAddress | undefined> {
    try {
      return tryParseIp(readFile(join(this.dir, LAST_RESERVED_PREFIX + setIndex), "utf8").trim());
    } catch {
      return undefined;
    }
  }

  /** Records the last reserved IP of a range set (no newline), atomically by rename. */
  async setLastReserved(setIndex: number, ip: IpAddress): Promise<void> {
    const path = join(this.dir, LAST_RESERVED_PREFIX + setIndex);
    const tmp = join(this.dir, `.${LAST_RESERVED_PREFIX}${setIndex}.${process.pid}.${Math.random().toString(36).slice(2)}`);
    try {
      writeFile(tmp, ip.toString(), { mode: 0o644 });
      rename(tmp, path);
    } catch (e) {
      quietly(() => unlink(tmp));
      throw ioFailure("cannot write", path, e);
    }
  }

  /** Every lease in the directory (files named by an IP address); files that vanish while reading are skipped. */
  async leases(): Promise<Lease[]> {
    let names: string[];
    try {
      names = readdir(this.dir);
    } catch (e) {
      if (errno(e) === "ENOENT") return [];
      throw ioFailure("cannot list", this.dir, e);
    }
    const out: Lease[] = [];
    for (const n of names) this.readLease(n, out);
    return out.sort((a, b) => (a.ip.family - b.ip.family) || (a.ip.value < b.ip.value ? -1 : a.ip.value > b.ip.value ? 1 : 0));
  }

  private readLease(name: string, out: Lease[]): void {
    const ip = tryParseIp(name);
    if (!ip) return;
    const path = join(this.dir, name);
    try {
      const [data, st] = [readFile(path), stat(path)];
      if (!st.isFile()) return;
      const lease: Lease = { ip, path, mtimeMs: st.mtimeMs };
      const owner = parseLeaseContent(data);
      if (owner) lease.owner = owner;
      out.push(lease);
    } catch (e) {
      if (errno(e) !== "ENOENT" && errno(e) !== "EISDIR") throw ioFailure("cannot read lease", path, e);
    }
  }

  /** Leftover temporary files of setLastReserved() older than maxAgeMs (from a crash), removed best effort. */
  async removeStaleTemp(maxAgeMs: number): Promise<void> {
    let names: string[] = [];
    quietly(() => (names = readdir(this.dir)));
    for (const n of names.filter((x) => x.startsWith(`.${LAST_RESERVED_PREFIX}`))) {
      const p = join(this.dir, n);
      const st = stat(p, { throwIfNoEntry: false });
      if (st && Date.now() - st.mtimeMs > maxAgeMs) quietly(() => unlink(p));
    }
  }

  /** True when leases can be written: the directory (or the nearest existing parent) is writable. */
  async writable(): Promise<boolean> {
    let p = this.dir;
    for (;;) {
      try {
        access(p, fsc.W_OK | fsc.X_OK);
        return true;
      } catch (e) {
        if (errno(e) !== "ENOENT") return false;
        const up = dirname(p);
        if (up === p) return false;
        p = up;
      }
    }
  }
}
