// A throwaway CA and a server certificate for the fake API server, made with the openssl CLI (node:crypto cannot sign X.509).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../../lib/host/exec.ts";

/** PEM files written by makeCerts. */
export interface ServerCerts {
  /** The CA certificate clients trust (`certificate-authority` in a kubeconfig). */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Contents, for node:https. */
  ca: string;
  cert: string;
  key: string;
}

/**
 * Writes ca.crt/ca.key and server.crt/server.key (EC P-256, 10 days) into dir. The server certificate's
 * subjectAltName holds every address in ips (127.0.0.1 always) and every name in dnsNames (localhost always),
 * since Go clients such as kubectl ignore the CN.
 */
export async function makeCerts(dir: string, ips: readonly string[] = [], dnsNames: readonly string[] = []): Promise<ServerCerts> {
  const p = (f: string): string => join(dir, f);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run(["openssl", "req", "-x509", ...ec, "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "10",
    "-subj", "/CN=ovsplane-fake-apiserver-ca", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  await run(["openssl", "req", ...ec, "-keyout", p("server.key"), "-out", p("server.csr"), "-subj", "/CN=kube-apiserver"]);
  const sans = [...new Set(["127.0.0.1", ...ips])].map((ip) => `IP:${ip}`)
    .concat([...new Set(["localhost", "kubernetes", "kubernetes.default", ...dnsNames])].map((d) => `DNS:${d}`));
  writeFileSync(p("server.ext"), [
    "basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=serverAuth", `subjectAltName=${sans.join(",")}`, "",
  ].join("\n"));
  await run(["openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial",
    "-out", p("server.crt"), "-days", "10", "-extfile", p("server.ext")]);
  const read = (f: string): string => readFileSync(p(f), "utf8");
  return { caFile: p("ca.crt"), certFile: p("server.crt"), keyFile: p("server.key"), ca: read("ca.crt"), cert: read("server.crt"), key: read("server.key") };
}

/** Options of kubeconfig. */
export interface KubeconfigOptions {
  /** `https://IP:PORT`. */
  server: string;
  /** PEM of the CA (embedded as certificate-authority-data). */
  ca: string;
  token: string;
  /** Context, cluster and user name (default "ovsplane-fake"). */
  name?: string;
}

/** A kubeconfig (JSON, which is YAML too) for a bearer-token user; kubectl and @kubernetes/client-node both read it. */
export function kubeconfig(o: KubeconfigOptions): string {
  const name = o.name ?? "ovsplane-fake";
  return JSON.stringify({
    apiVersion: "v1", kind: "Config", preferences: {},
    clusters: [{ name, cluster: { server: o.server, "certificate-authority-data": Buffer.from(o.ca).toString("base64") } }],
    users: [{ name, user: { token: o.token } }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    "current-context": name,
  }, null, 2) + "\n";
}
