// cnidriver: a minimal CNI runtime (libcni, as containerd/CRI-O use it) for integration tests.
//
// Usage: cnidriver add|check|del <conflist file> <containerID> <netns path> <ifname>
// Env: CNI_PATH (plugin dirs, ':'-separated), CNI_CACHE_DIR (result cache, default /var/lib/cni),
// CNI_ARGS ("K=V;K=V" -> RuntimeConf.Args), CAP_ARGS (JSON object -> RuntimeConf.CapabilityArgs).
// ADD prints the result JSON on stdout; any error goes to stderr with exit status 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "cnidriver: "+format+"\n", a...)
	os.Exit(1)
}

func loadList(file string) (*libcni.NetworkConfigList, error) {
	list, err := libcni.ConfListFromFile(file)
	if err == nil {
		return list, nil
	}
	// A single-plugin .conf file: wrap it in a list as the runtimes do.
	conf, err2 := libcni.ConfFromFile(file)
	if err2 != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(conf)
}

func main() {
	if len(os.Args) != 6 {
		fail("usage: cnidriver add|check|del <conflist file> <containerID> <netns path> <ifname>")
	}
	cmd, file := os.Args[1], os.Args[2]
	list, err := loadList(file)
	if err != nil {
		fail("loading %s: %v", file, err)
	}
	rt := &libcni.RuntimeConf{ContainerID: os.Args[3], NetNS: os.Args[4], IfName: os.Args[5]}
	for _, kv := range strings.Split(os.Getenv("CNI_ARGS"), ";") {
		if kv == "" {
			continue
		}
		parts := strings.SplitN(kv, "=", 2)
		if len(parts) != 2 {
			fail("bad CNI_ARGS item %q (want K=V)", kv)
		}
		rt.Args = append(rt.Args, [2]string{parts[0], parts[1]})
	}
	if capArgs := os.Getenv("CAP_ARGS"); capArgs != "" {
		if err := json.Unmarshal([]byte(capArgs), &rt.CapabilityArgs); err != nil {
			fail("bad CAP_ARGS JSON: %v", err)
		}
	}
	cacheDir := os.Getenv("CNI_CACHE_DIR")
	if cacheDir != "" {
		rt.CacheDir = cacheDir
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cacheDir, nil)
	ctx := context.Background()
	switch cmd {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail("ADD: %v", err)
		}
		if err := res.PrintTo(os.Stdout); err != nil {
			fail("printing result: %v", err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("CHECK: %v", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail("DEL: %v", err)
		}
	default:
		fail("unknown command %q (want add, check or del)", cmd)
	}
}
