// ovsplane: the main CNI plugin (pods on Open vSwitch, VXLAN between nodes, segments isolated).
import { dispatch } from "../lib/cni/skel.ts";
import { IPAM_TYPE } from "../lib/ipam/type.ts";
import { calls, logCall } from "../lib/plugin/calllog.ts";
import { OVSPLANE_ARGS, ovsplanePlugin } from "../lib/plugin/plugin.ts";
import { configure, settingsFromEnv } from "../lib/settings.ts";

configure(settingsFromEnv(process.env));
calls.start();
void dispatch(ovsplanePlugin, {
  about: "ovsplane: Open vSwitch CNI plugin with VXLAN segments",
  env: process.env,
  knownArgs: OVSPLANE_ARGS,
  builtinIpam: [IPAM_TYPE],
  onDone: logCall,
});
