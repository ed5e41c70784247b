// Shapes of the CNI protocol: configuration, results and the request a command handler receives.

/** A route as the spec writes it. */
export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** An interface entry of a 1.x result. */
export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

/** An IP entry of a 1.x result. */
export interface ResultIP {
  address: string;
  gateway?: string;
  interface?: number;
}

/** DNS settings of a result. */
export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the current (1.x) shape; converted on output for older versions. */
export interface Result {
  cniVersion: string;
  interfaces?: ResultInterface[];
  ips?: ResultIP[];
  routes?: Route[];
  dns?: DNS;
}

/** A GC attachment. */
export interface Attachment {
  containerID: string;
  ifname: string;
}

/** The network configuration on stdin (the plugin's own fields are read by its parser). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  ipam?: { type?: string; [k: string]: unknown };
  prevResult?: unknown;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  [k: string]: unknown;
}

/** Everything a command handler is given. */
export interface CniRequest {
  command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS";
  containerID: string;
  netns: string;
  ifname: string;
  /** Parsed CNI_ARGS (keys as given). */
  args: Record<string, string>;
  /** CNI_ARGS as received (passed on unchanged to delegates). */
  rawArgs: string;
  path: string[];
  /** The raw stdin bytes (passed on unchanged to delegates). */
  stdin: string;
  conf: NetConf;
  /** prevResult converted to the 1.x shape, when present. */
  prevResult?: Result;
}

/** A plugin: what each command does. VERSION is answered by the dispatcher. */
export interface Plugin {
  add(req: CniRequest): Promise<Result>;
  del(req: CniRequest): Promise<void>;
  check(req: CniRequest): Promise<void>;
  gc(req: CniRequest): Promise<void>;
  status(req: CniRequest): Promise<void>;
}
