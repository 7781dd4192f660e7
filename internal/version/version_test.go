package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name            string
		bi              *debug.BuildInfo
		stamp, stampRev string
		want            Info
	}{
		{"no build info", nil, "", "", Info{"devel", "unknown", runtime.Version()}},
		{"stamped, no build info", nil, "v1.2.0", "abc123-dirty", Info{"v1.2.0", "abc123-dirty", runtime.Version()}},
		{"make build with -buildvcs=false", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"v0.3.0-12-gabc1234", "abc1234def", Info{"v0.3.0-12-gabc1234", "abc1234def", "go1.26.8"}},
		{"go test binary", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/aimwan/aimwan", Version: "(devel)"}},
			"", "", Info{"devel", "unknown", "go1.26.8"}},
		{"go build in a clean checkout", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Version: "v0.0.0-20260101120000-0123456789ab"}, Settings: vcs("0123456789abcdef", "false")},
			"", "", Info{"v0.0.0-20260101120000-0123456789ab", "0123456789abcdef", "go1.26.8"}},
		{"local changes", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Version: "v0.0.0-20260101120000-0123456789ab+dirty"}, Settings: vcs("0123456789abcdef", "true")},
			"", "", Info{"v0.0.0-20260101120000-0123456789ab+dirty", "0123456789abcdef-dirty", "go1.26.8"}},
		{"stamp wins over the module version", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Version: "v0.0.0-20260101120000-0123456789ab"}, Settings: vcs("0123456789abcdef", "false")},
			" v1.3.0\n", "ffff", Info{"v1.3.0", "0123456789abcdef", "go1.26.8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromBuildInfo(tc.bi, tc.stamp, tc.stampRev); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestGetAndString(t *testing.T) {
	in := Get()
	if in.Version == "" || in.Revision == "" || !strings.HasPrefix(in.GoVersion, "go") {
		t.Fatalf("Get() = %+v: empty fields", in)
	}
	s := in.String()
	for _, want := range []string{"aimwan " + in.Version, "revision " + in.Revision, in.GoVersion, runtime.GOOS} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q lacks %q", s, want)
		}
	}
}
