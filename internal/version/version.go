// Package version reports what build of stellwerk is running.
package version

import "runtime/debug"

// Version is set at link time (-ldflags "-X …/version.Version=v1.2.3");
// otherwise it falls back to the VCS revision recorded by the Go toolchain.
var Version = ""

// String returns the version, never empty.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "dev"
}
