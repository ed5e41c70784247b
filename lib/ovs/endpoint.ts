// OVSDB and OpenFlow endpoints: `unix:PATH`, `tcp:HOST:PORT` or `tcp:[v6]:PORT`, parsed in one place.
import { invalidConfig } from "../cni/errors.ts";

/** Where to connect, as node:net's createConnection takes it. */
export type Endpoint = { path: string } | { host: string; port: number };

/** Parses an endpoint; a malformed one is code 7 naming the field. */
export function parseEndpoint(field: string, value: string): Endpoint {
  if (/^unix:./.test(value)) return { path: value.slice(5) };
  const m = /^tcp:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (m && port > 0 && port < 65536) return { host: (m[1] ?? m[2])!, port };
  throw invalidConfig(field, value, "expected unix:PATH or tcp:HOST:PORT");
}
