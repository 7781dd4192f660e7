// Package version tells which build of aimwan is running: the version, the
// source revision it was built from and the Go release that built it. They
// appear in `aimwan --version` and, as the aimwan_build_info metric, on every
// daemon's /metrics.
//
// Glossary:
//
//   - version: what the release was called. A build stamps it with
//     -ldflags "-X github.com/aimwan/aimwan/internal/version.stamped=v1.2.0"
//     (make build does, from `git describe --tags --always --dirty`);
//     otherwise it is the main module's version the go command recorded (a
//     pseudo-version built from the commit, "+dirty" with local changes), or
//     "devel".
//   - revision: the VCS commit (vcs.revision of runtime/debug.BuildInfo),
//     with "-dirty" when the work tree had local changes; else the one
//     stamped with -X .../internal/version.stampedRevision=COMMIT (make build
//     does: it also works with -buildvcs=false); else "unknown" (go test).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// stamped and stampedRevision are set at link time with -ldflags -X (see
// the package comment).
var stamped, stampedRevision string

// Info describes one build.
type Info struct {
	Version   string // e.g. v1.2.0, v0.0.0-20260101120000-0123456789ab+dirty, devel
	Revision  string // VCS commit, "-dirty" appended for a modified tree; "unknown" without VCS data
	GoVersion string // e.g. go1.26.8
}

// Get returns the running binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi, stamped, stampedRevision)
}

// fromBuildInfo derives Info from bi (nil: none recorded) and the stamped
// version and revision ("" when not stamped).
func fromBuildInfo(bi *debug.BuildInfo, stamp, stampRev string) Info {
	in := Info{Version: strings.TrimSpace(stamp), Revision: strings.TrimSpace(stampRev), GoVersion: runtime.Version()}
	if in.Revision == "" {
		in.Revision = "unknown"
	}
	if bi == nil {
		if in.Version == "" {
			in.Version = "devel"
		}
		return in
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	if in.Version == "" {
		in.Version = bi.Main.Version
	}
	if in.Version == "" || in.Version == "(devel)" {
		in.Version = "devel"
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value // the build's own record wins over a stamp
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && in.Revision != "unknown" && !strings.HasSuffix(in.Revision, "-dirty") {
		in.Revision += "-dirty"
	}
	return in
}

// String is the one line `aimwan --version` prints.
func (i Info) String() string {
	return fmt.Sprintf("aimwan %s (revision %s, %s, %s/%s)", i.Version, i.Revision, i.GoVersion, runtime.GOOS, runtime.GOARCH)
}
