// ovsplane-ipam executable: the host-local compatible IPAM plugin behind the shared CNI dispatcher.
import { dispatch } from "../lib/cni/skel.ts";
import { IPAM_ARGS, ipamPlugin } from "../lib/ipam/plugin.ts";
import { IPAM_TYPE } from "../lib/ipam/type.ts";
import { configure, settingsFromEnv } from "../lib/settings.ts";

configure(settingsFromEnv(process.env));
void dispatch(ipamPlugin, {
  about: "ovsplane-ipam: host-local compatible IP address management for ovsplane",
  env: process.env,
  knownArgs: IPAM_ARGS,
  builtinIpam: [IPAM_TYPE],
});
