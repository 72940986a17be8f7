// Package version holds the version of this build of qnet.
package version

import "runtime/debug"

// Version is set at build time with -ldflags "-X qnet.dev/qnet/version.Version=v1.2.3";
// otherwise it is the module version or the VCS revision Go recorded.
var Version = "dev"

func init() {
	if Version != "dev" {
		return
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		Version = v
		return
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			Version = "dev-" + s.Value[:12]
		}
	}
}
