package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aimwan/aimwan/internal/testkit"
)

// guidePath is the two-site install guide whose marked blocks
// TestInstallGuide runs.
const guidePath = "../docs/install.md"

// guideBlock is one fenced block marked `sh {guide site=...}`.
type guideBlock struct {
	line  int      // line of the opening fence, for messages
	sites []string // "primary", "dr"
	text  string
}

var guideFence = regexp.MustCompile("^```sh \\{guide site=([a-z,]+)\\}\\s*$")

// parseGuide returns the marked blocks of the guide in order.
func parseGuide(t *testing.T, path string) []guideBlock {
	t.Helper()
	var out []guideBlock
	var cur *guideBlock
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(testkit.ReadFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			cur.text = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		case strings.HasPrefix(line, "```sh {guide"):
			m := guideFence.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("%s:%d: a guide block mark that does not parse: %q", path, n, line)
			}
			cur = &guideBlock{line: n, sites: strings.Split(m[1], ",")}
			for _, s := range cur.sites {
				if s != "primary" && s != "dr" {
					t.Fatalf("%s:%d: unknown site %q (want primary or dr)", path, n, s)
				}
			}
			body.Reset()
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: guide block not closed", path, cur.line)
	}
	return out
}

// guideRun is the state of one run of the guide: a folder per site standing
// in for its host's /, the port map, the shell environment the blocks share,
// and the daemons started by systemctl lines.
type guideRun struct {
	t       *testing.T
	dir     string            // work folder: the aimwan build and deploy/
	roots   map[string]string // site -> its "/"
	ports   map[string]string // guide port -> free loopback port
	env     string            // file of the shared shell variables
	root    bool              // running as root: useradd and owners are run
	skipped []string
}

var (
	guidePaths = regexp.MustCompile(`(^|[\s'"=\[,(])(/etc/aimwan|/etc/systemd/system|/var/lib/aimwan|/srv|/usr/local/bin)\b`)
	guideHosts = regexp.MustCompile(`\b(?:127\.0\.0\.1|10\.0\.0\.7|10\.1\.0\.5|dr\.example\.net):(\d{4,5})\b`)
	guideBare  = regexp.MustCompile(`(^|[\s'"=]):(\d{4,5})\b`)
	guideOwner = regexp.MustCompile(` -o aimwan -g aimwan`)
)

// subst rewrites one line of the guide for site: paths under the site's
// folder, site addresses to loopback and each port to its free port.
func (g *guideRun) subst(site, s string) string {
	root := g.roots[site]
	s = guidePaths.ReplaceAllString(s, "${1}"+root+"${2}")
	s = guideHosts.ReplaceAllStringFunc(s, func(m string) string {
		return g.port(m[strings.LastIndexByte(m, ':')+1:])
	})
	return guideBare.ReplaceAllStringFunc(s, func(m string) string {
		i := strings.IndexByte(m, ':')
		return m[:i] + g.port(m[i+1:])
	})
}

// port maps a port number of the guide to a free loopback address, the same
// one every time.
func (g *guideRun) port(p string) string {
	if a, ok := g.ports[p]; ok {
		return a
	}
	a := testkit.FreeAddr(g.t)
	g.ports[p] = a
	return a
}

// shellLine rewrites a shell line for site, dropping what needs an aimwan
// user the test may not have.
func (g *guideRun) shellLine(site, line string) string {
	line = strings.ReplaceAll(line, "sudo -u aimwan ", "")
	if strings.Contains(line, "useradd") {
		if !g.root {
			g.skip(site, line)
			return ": # skipped (not root): " + line
		}
		return line // the home folder is a passwd field: no path to substitute
	}
	if !g.root && guideOwner.MatchString(line) {
		g.skip(site, "the owner of: "+line)
		line = guideOwner.ReplaceAllString(line, "")
	}
	return g.subst(site, line)
}

func (g *guideRun) skip(site, what string) {
	g.skipped = append(g.skipped, site+": "+what)
	g.t.Logf("skipped at %s (the test does not run as root): %s", site, what)
}

// runBlock runs a block at site: systemctl lines by the test, runs of other
// lines in bash with the shared variables.
func (g *guideRun) runBlock(b guideBlock, site string) {
	g.t.Helper()
	var script []string
	flush := func() {
		if len(script) > 0 {
			g.shell(b, site, strings.Join(script, "\n"))
			script = nil
		}
	}
	for _, line := range strings.Split(strings.TrimRight(b.text, "\n"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "systemctl" {
			flush()
			g.systemctl(b, site, f[1:])
			continue
		}
		script = append(script, g.shellLine(site, line))
	}
	flush()
}

// shell runs script in bash -euo pipefail with the variables the blocks
// before set (exported with set -a and saved after it), the site's
// /usr/local/bin first on PATH, in the work folder. Its process group is
// killed afterwards, so a background job left by a failed line goes too.
func (g *guideRun) shell(b guideBlock, site, script string) {
	g.t.Helper()
	full := fmt.Sprintf("set -euo pipefail\nset -a\n. %q\nexport PATH=%q:\"$GUIDE_PATH\"\ncd %q\n%s\nexport -p > %q\n",
		g.env, filepath.Join(g.roots[site], "usr/local/bin"), g.dir, script, g.env)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", full)
	cmd.Env = append(os.Environ(), "GUIDE_PATH="+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of a failed line
	}
	g.t.Logf("%s:%d at %s (%v):\n%s\n--- output:\n%s", guidePath, b.line, site, time.Since(start).Round(time.Millisecond), script, out)
	if err != nil {
		g.t.Fatalf("%s:%d: the guide's block at the %s site failed: %v", guidePath, b.line, site, err)
	}
}

// systemctl does what the guide's systemctl line would: daemon-reload is
// skipped; enable --now and start run each unit's ExecStart (from the unit
// file the guide installed) as a daemon owned by the test.
func (g *guideRun) systemctl(b guideBlock, site string, args []string) {
	g.t.Helper()
	if len(args) == 0 {
		g.t.Fatalf("%s:%d: systemctl without a command", guidePath, b.line)
	}
	var units []string
	switch {
	case args[0] == "daemon-reload":
		g.t.Logf("%s: systemctl daemon-reload: skipped (no systemd; the units are read from the folder the guide installed them to)", site)
		return
	case args[0] == "start", args[0] == "enable" && len(args) > 1 && args[1] == "--now":
		for _, a := range args[1:] {
			if !strings.HasPrefix(a, "-") {
				units = append(units, a)
			}
		}
	default:
		g.t.Fatalf("%s:%d: systemctl %s: the test maps only daemon-reload, start and enable --now", guidePath, b.line, strings.Join(args, " "))
	}
	for _, u := range units {
		g.startUnit(site, strings.TrimSuffix(u, ".service")+".service")
	}
}

// startUnit starts one installed unit's ExecStart after checking that the
// folders its configuration writes are writable under the unit's hardening.
func (g *guideRun) startUnit(site, unit string) {
	g.t.Helper()
	root := g.roots[site]
	svc := parseService(g.t, filepath.Join(root, "etc/systemd/system", unit))
	for _, d := range strings.Fields(svc["StateDirectory"]) {
		if err := os.MkdirAll(filepath.Join(root, "var/lib", d), 0o750); err != nil {
			g.t.Fatal(err)
		}
	}
	var writable []string
	for _, d := range strings.Fields(svc["StateDirectory"]) {
		writable = append(writable, filepath.Join(root, "var/lib", d))
	}
	for _, p := range strings.Fields(svc["ReadWritePaths"]) {
		writable = append(writable, g.subst(site, strings.TrimPrefix(p, "-")))
	}
	cmdline := strings.Fields(g.subst(site, svc["ExecStart"]))
	if len(cmdline) < 2 {
		g.t.Fatalf("%s: ExecStart %q", unit, svc["ExecStart"])
	}
	cfgPath := ""
	for i, a := range cmdline {
		if a == "--config" && i+1 < len(cmdline) {
			cfgPath = cmdline[i+1]
		}
	}
	var cfg struct {
		Buffer    string `yaml:"buffer"`
		Cache     string `yaml:"cache"`
		Snapshots string `yaml:"snapshots"`
		Record    string `yaml:"record"`
		Metrics   string `yaml:"metrics"`
		Volumes   []struct {
			Path string `yaml:"path"`
		} `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(testkit.ReadFile(g.t, cfgPath), &cfg); err != nil {
		g.t.Fatalf("%s: %s: %v", unit, cfgPath, err)
	}
	paths := []string{cfg.Buffer, cfg.Cache, cfg.Snapshots, cfg.Record}
	for _, v := range cfg.Volumes {
		if !strings.Contains(v.Path, "://") {
			paths = append(paths, v.Path)
		}
	}
	for _, p := range paths {
		if p != "" && !underAny(p, writable) {
			g.t.Fatalf("%s at %s: %s writes %s, which %s may not write under ProtectSystem=strict (writable: %v)",
				unit, site, cfgPath, p, unit, writable)
		}
	}
	if cfg.Metrics == "" {
		g.t.Fatalf("%s: the guide's %s names no metrics address (the test waits for it)", unit, cfgPath)
	}
	p := testkit.StartProc(g.t, cmdline[0], site+"-"+strings.TrimSuffix(unit, ".service"), cmdline[1:]...)
	WaitPort(g.t, cfg.Metrics, p)
	g.t.Logf("%s: systemctl start %s: %s (as the test's user)", site, unit, strings.Join(cmdline, " "))
}

// underAny reports whether path is one of dirs or inside one.
func underAny(path string, dirs []string) bool {
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

// parseService reads the [Service] section of a unit file (Key=Value lines;
// a repeated key's values are joined with a space, as systemd does for the
// list settings used here).
func parseService(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	section := ""
	for _, line := range strings.Split(string(testkit.ReadFile(t, path)), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		case section == "Service":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q", path, line)
			}
			if out[k] != "" {
				v = out[k] + " " + v
			}
			out[k] = v
		}
	}
	if out["ExecStart"] == "" {
		t.Fatalf("%s: no ExecStart", path)
	}
	return out
}

// TestInstallGuide follows docs/install.md on loopback: every block marked
// `sh {guide site=...}` runs in order, at its site (a folder standing in for
// that host's /), with the substitutions the guide's last section lists.
// Then the data the guide moved onto the primary's volume through NBD must
// be byte-identical in the DR site's first snapshot and in its replica.
func TestInstallGuide(t *testing.T) {
	NeedBins(t, "bash", "qemu-img", "qemu-io", "qemu-nbd", "nbdcopy", "nbdinfo", "sha256sum", "timeout")
	blocks := parseGuide(t, guidePath)
	if len(blocks) < 10 {
		t.Fatalf("%s: %d guide blocks; the marks were lost?", guidePath, len(blocks))
	}
	base := t.TempDir()
	g := &guideRun{t: t, dir: filepath.Join(base, "work"), env: filepath.Join(base, "guide.env"),
		roots: map[string]string{"primary": filepath.Join(base, "primary"), "dr": filepath.Join(base, "dr")},
		ports: map[string]string{}, root: os.Geteuid() == 0}
	if err := os.WriteFile(g.env, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The work folder: the operator's build of aimwan and the source tree's deploy/.
	if err := os.MkdirAll(filepath.Join(g.dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	Run(t, "cp", aimwanBin, filepath.Join(g.dir, "bin/aimwan"))
	deploy, err := filepath.Abs("../deploy")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(deploy, filepath.Join(g.dir, "deploy")); err != nil {
		t.Fatal(err)
	}
	// Each site's "/" holds the folders every host has.
	for _, root := range g.roots {
		for _, d := range []string{"usr/local/bin", "etc/systemd/system", "var/lib", "srv"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The VM image the guide moves onto the volume, at the primary site.
	images := filepath.Join(g.roots["primary"], "srv/images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(base, "vm1.raw")
	const imageSize = 8 << 20
	GenImage(t, raw, imageSize, 16)
	Run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, filepath.Join(images, "vm1.qcow2"))

	start := time.Now()
	runs := 0
	for _, b := range blocks {
		for _, site := range b.sites {
			g.runBlock(b, site)
			runs++
		}
	}
	t.Logf("ran %d guide blocks (%d block runs) in %v; skipped: %d line(s)%s", len(blocks), runs, time.Since(start).Round(time.Millisecond), len(g.skipped), strings.Join(append([]string{""}, g.skipped...), "\n  "))

	// Real replication: what qemu-img wrote through src's NBD export is in
	// the DR snapshot and the replica, byte for byte, the rest zeros.
	want := testkit.ReadFile(t, raw)
	for _, p := range []string{"srv/dr/snapshots/vm1/first.img", "srv/dr/vm1.img"} {
		got := testkit.ReadFile(t, filepath.Join(g.roots["dr"], p))
		if len(got) != 64<<20 {
			t.Fatalf("%s: %d bytes, want the volume's 64 MiB", p, len(got))
		}
		if !bytes.Equal(got[:imageSize], want) {
			t.Fatalf("%s differs from the imported image: %s", p, testkit.FirstDiff(want, got[:imageSize]))
		}
		for i, c := range got[imageSize:] {
			if c != 0 {
				t.Fatalf("%s: byte %d past the imported image is not zero", p, imageSize+i)
			}
		}
	}
}

// TestGuideSubst: the substitution layer of TestInstallGuide maps paths into
// the site's folder and guide ports to loopback ports, the same port for a
// listen and the dials to it, and leaves times, sizes and other text alone.
func TestGuideSubst(t *testing.T) {
	g := &guideRun{t: t, roots: map[string]string{"primary": "/R/p", "dr": "/R/d"}, ports: map[string]string{}, root: true}
	wan := g.port("7820")
	tests := []struct{ site, in, want string }{
		{"dr", `wan_listen: ":7820"`, `wan_listen: "` + wan + `"`},
		{"primary", "wan_peer: dr.example.net:7820", "wan_peer: " + wan},
		{"primary", "metrics: 10.1.0.5:7820 # at 08:00-18:00", "metrics: " + wan + " # at 08:00-18:00"},
		{"dr", "buffer: /var/lib/aimwan/dst", "buffer: /R/d/var/lib/aimwan/dst"},
		{"primary", "peer_fp: [$FP]  cache_size: 4GiB", "peer_fp: [$FP]  cache_size: 4GiB"},
		{"primary", "install -m 0755 bin/aimwan /usr/local/bin/aimwan", "install -m 0755 bin/aimwan /R/p/usr/local/bin/aimwan"},
		{"primary", "cp x /srvx /etc/aimwanx", "cp x /srvx /etc/aimwanx"},
		{"primary", "sudo -u aimwan aimwan keygen --dir /etc/aimwan/key", "aimwan keygen --dir /R/p/etc/aimwan/key"},
		{"primary", "useradd --system --home /var/lib/aimwan aimwan", "useradd --system --home /var/lib/aimwan aimwan"},
	}
	for _, tc := range tests {
		if got := g.shellLine(tc.site, tc.in); got != tc.want {
			t.Errorf("%s: %q -> %q, want %q", tc.site, tc.in, got, tc.want)
		}
	}
	g.root = false
	if got := g.shellLine("dr", "install -d -o aimwan -g aimwan -m 0700 /etc/aimwan/key"); got != "install -d -m 0700 /R/d/etc/aimwan/key" || len(g.skipped) != 1 {
		t.Errorf("not root: %q, skipped %v", got, g.skipped)
	}
	if got := g.shellLine("dr", "useradd aimwan"); !strings.HasPrefix(got, ": # skipped") || len(g.skipped) != 2 {
		t.Errorf("not root: useradd became %q, skipped %v", got, g.skipped)
	}
}
