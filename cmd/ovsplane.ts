// ovsplane: the main CNI plugin (pods on Open vSwitch, VXLAN between nodes, segments isolated).
import { dispatch } from "../lib/cni/skel.ts";
import { OVSPLANE_ARGS, ovsplanePlugin } from "../lib/plugin/plugin.ts";

void dispatch(ovsplanePlugin, { about: "ovsplane: Open vSwitch CNI plugin with VXLAN segments", knownArgs: OVSPLANE_ARGS });
