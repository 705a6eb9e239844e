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
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi)
}

// fromBuildInfo names an unstamped build by its commit, with -dirty when
// the tree had uncommitted changes (as git describe --dirty does): a
// revision alone would claim to be that commit when it is not.
func fromBuildInfo(bi *debug.BuildInfo) string {
	if bi == nil {
		return "dev"
	}
	var revision string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if len(revision) >= 12 {
		v := "dev-" + revision[:12]
		if modified {
			v += "-dirty"
		}
		return v
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
