package reports

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/testkit"
)

// deployDir holds the operations files (dashboard, alerts, systemd units).
var deployDir = filepath.Join("..", "deploy")

var reMetricName = regexp.MustCompile(`\baimwan_[a-z0-9_]+`)

// documentedMetrics returns the metric names docs/metrics.md mentions.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range reMetricName.FindAllString(string(b), -1) {
		names[n] = true
	}
	return names
}

// checkExprMetrics: every aimwan metric an expression uses is documented.
func checkExprMetrics(t *testing.T, where, expr string, documented map[string]bool) {
	t.Helper()
	for _, n := range reMetricName.FindAllString(expr, -1) {
		if !documented[n] {
			t.Errorf("%s uses %s, which docs/metrics.md does not document", where, n)
		}
	}
}

// balanced reports whether (), [] and {} nest properly in a PromQL
// expression (a cheap syntax check; strings are not expected in ours except
// label values without brackets).
func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, r := range expr {
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0
}

type grafanaPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "grafana", "aimwan-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title         string         `json:"title"`
		UID           string         `json:"uid"`
		SchemaVersion int            `json:"schemaVersion"`
		Panels        []grafanaPanel `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 {
		t.Errorf("dashboard lacks title, uid or schemaVersion")
	}
	documented := documentedMetrics(t)
	ids := map[int]bool{}
	exprs := ""
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !balanced(tg.Expr) {
				t.Errorf("panel %q: unbalanced brackets in %s", p.Title, tg.Expr)
			}
			checkExprMetrics(t, "panel "+p.Title, tg.Expr, documented)
			exprs += tg.Expr + "\n"
		}
	}
	// Proxy figures are the source edge's: both edges count the same logical
	// bytes, so an expression over both reads twice the data reduction.
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range []string{metrics.ProxyLogical, metrics.ProxyWire, metrics.ProxyCacheHits, metrics.ProxyCacheMisses} {
				if n := strings.Count(tg.Expr, m); n > 0 && strings.Count(tg.Expr, m+`{role="source"}`) != n {
					t.Errorf("panel %q: %s without role=\"source\" in %s", p.Title, m, tg.Expr)
				}
			}
		}
	}
	// The charts of the report are all on the dashboard.
	for _, m := range []string{metrics.ProxyWire, metrics.DstLogical, metrics.SrcData, metrics.TimeLatency,
		metrics.ProxyLogical, metrics.ProxyCacheHits, metrics.ProxyScheduleCap} {
		if !strings.Contains(exprs, m) {
			t.Errorf("no dashboard panel uses %s", m)
		}
	}
}

func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "aimwan-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alert rules are not valid YAML of the rule-file shape: %v", err)
	}
	documented := documentedMetrics(t)
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := "alert " + r.Alert
			if r.Alert == "" || alerts[r.Alert] {
				t.Errorf("group %s: alert name empty or repeated: %q", g.Name, r.Alert)
			}
			alerts[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" || !balanced(r.Expr) {
				t.Errorf("%s: empty or unbalanced expr %q", where, r.Expr)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", where, r.For, err)
				}
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs summary and description", where)
			}
			checkExprMetrics(t, where, r.Expr, documented)
		}
	}
	for _, want := range []string{"AimwanRPOAboveThreshold", "AimwanSourceBufferFilling", "AimwanDestinationVolumeOffline", "AimwanPeerDown",
		"AimwanReplicationStalled", "AimwanSourceBufferFull", "AimwanDestinationBufferFull", "AimwanVolumePullAhead", "AimwanDaemonDown"} {
		if !alerts[want] {
			t.Errorf("alert %s missing", want)
		}
	}
	// The scrape example parses and defines the job names the rules use.
	sb, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "scrape.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var sc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(sb, &sc); err != nil {
		t.Fatalf("scrape.yml: %v", err)
	}
	jobs := map[string]bool{}
	for _, s := range sc.ScrapeConfigs {
		jobs[s.JobName] = true
	}
	for _, j := range []string{"aimwan-src", "aimwan-dst", "aimwan-proxy"} {
		if !jobs[j] {
			t.Errorf("scrape.yml has no job %s", j)
		}
	}
}

// hardening lists the options every unit must set.
var hardening = []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
	"CapabilityBoundingSet=", "RestrictAddressFamilies=", "SystemCallFilter=@system-service", "User=aimwan"}

func TestSystemdUnits(t *testing.T) {
	for _, daemon := range []string{"src", "dst", "proxy"} {
		t.Run(daemon, func(t *testing.T) {
			path := filepath.Join(deployDir, "systemd", "aimwan-"+daemon+".service")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sections, err := parseUnit(b)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"Unit", "Service", "Install"} {
				if _, ok := sections[s]; !ok {
					t.Errorf("no [%s] section", s)
				}
			}
			svc := sections["Service"]
			if want := "/usr/local/bin/aimwan " + daemon + " --config /etc/aimwan/" + daemon + ".yaml"; svc["ExecStart"] != want {
				t.Errorf("ExecStart %q, want %q", svc["ExecStart"], want)
			}
			for _, h := range hardening {
				k, v, _ := strings.Cut(h, "=")
				got, ok := svc[k]
				if !ok || (v != "" && !strings.HasPrefix(got, v)) {
					t.Errorf("missing hardening %s (have %q)", h, got)
				}
			}
			verifyUnit(t, path, b)
		})
	}
}

// TestSystemdUnitsMatchDocs: the paths the docs give the daemons work under
// the units' hardening (ProtectSystem=strict makes everything read-only but
// the state, cache and ReadWritePaths= folders): the proxy's chunk cache and
// the destination's buffer, volumes and snapshots are writable, and the key
// path the proxy unit names is the one docs/deployment.md uses.
func TestSystemdUnitsMatchDocs(t *testing.T) {
	units := map[string]map[string]string{}
	text := map[string]string{}
	for _, d := range []string{"src", "dst", "proxy"} {
		b, err := os.ReadFile(filepath.Join(deployDir, "systemd", "aimwan-"+d+".service"))
		if err != nil {
			t.Fatal(err)
		}
		sections, err := parseUnit(b)
		if err != nil {
			t.Fatal(err)
		}
		units[d], text[d] = sections["Service"], string(b)
	}
	readDoc := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "docs", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	deployment := readDoc("deployment.md")

	var cache, keys []string
	for _, m := range regexp.MustCompile(`--cache (/[\w./-]*\w)`).FindAllStringSubmatch(deployment, -1) {
		cache = append(cache, m[1])
	}
	for _, m := range regexp.MustCompile(`--(?:key|dir) (/[\w./-]*\w)`).FindAllStringSubmatch(deployment, -1) {
		keys = append(keys, m[1])
	}
	if len(cache) == 0 || len(keys) == 0 {
		t.Fatalf("docs/deployment.md: found cache paths %v, key paths %v; the pattern missed them", cache, keys)
	}
	for _, c := range cache {
		if !unitWritable(units["proxy"], c) {
			t.Errorf("docs/deployment.md uses --cache %s, which aimwan-proxy.service cannot write (writable: %v)", c, writablePaths(units["proxy"]))
		}
	}
	for _, k := range keys {
		if !strings.Contains(text["proxy"], "--dir "+k) || !strings.HasPrefix(k, "/etc/"+units["proxy"]["ConfigurationDirectory"]+"/") {
			t.Errorf("docs/deployment.md's key %s is not the one aimwan-proxy.service names (keygen --dir) under its configuration directory", k)
		}
	}

	// The destination's example configuration.
	doc := readDoc("destination-node.md")
	_, after, ok := strings.Cut(doc, "Example `dst.yaml`:\n\n```yaml\n")
	block, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("docs/destination-node.md: no dst.yaml example")
	}
	var dst struct {
		Buffer    string `yaml:"buffer"`
		Snapshots string `yaml:"snapshots"`
		Volumes   []struct {
			Path string `yaml:"path"`
		} `yaml:"volumes"`
	}
	if err := yaml.Unmarshal([]byte(block), &dst); err != nil {
		t.Fatalf("docs/destination-node.md dst.yaml: %v", err)
	}
	paths := []string{dst.Buffer, dst.Snapshots}
	for _, v := range dst.Volumes {
		// block devices: see the unit's note on DeviceAllow=; NBD URIs
		// (nbd://, nbd+unix://): a connection, no path to write
		if !strings.HasPrefix(v.Path, "/dev/") && !strings.Contains(v.Path, "://") {
			paths = append(paths, v.Path)
		}
	}
	for _, p := range paths {
		if !unitWritable(units["dst"], p) {
			t.Errorf("docs/destination-node.md's dst.yaml uses %s, which aimwan-dst.service cannot write (writable: %v)", p, writablePaths(units["dst"]))
		}
	}
	if got := units["src"]["StateDirectory"]; got != "aimwan/src" {
		t.Errorf("aimwan-src.service StateDirectory %q, want aimwan/src", got)
	}
}

// writablePaths are the folders a unit may write under ProtectSystem=strict.
func writablePaths(svc map[string]string) []string {
	var out []string
	for _, d := range strings.Fields(svc["StateDirectory"]) {
		out = append(out, "/var/lib/"+d)
	}
	for _, d := range strings.Fields(svc["CacheDirectory"]) {
		out = append(out, "/var/cache/"+d)
	}
	for _, p := range strings.Fields(svc["ReadWritePaths"]) {
		out = append(out, strings.TrimPrefix(p, "-"))
	}
	if svc["PrivateTmp"] == "yes" {
		out = append(out, "/tmp")
	}
	return out
}

// unitWritable reports whether path lies in a folder the unit may write.
func unitWritable(svc map[string]string, path string) bool {
	for _, w := range writablePaths(svc) {
		if path == w || strings.HasPrefix(path, strings.TrimSuffix(w, "/")+"/") {
			return true
		}
	}
	return false
}

// parseUnit reads a systemd unit: sections of Key=Value lines, # comments.
func parseUnit(b []byte) (map[string]map[string]string, error) {
	sections := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = map[string]string{}
			sections[line[1:len(line)-1]] = cur
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == nil {
				return nil, &unitError{line: n, text: line}
			}
			cur[k] = v
		}
	}
	return sections, sc.Err()
}

type unitError struct {
	line int
	text string
}

func (e *unitError) Error() string {
	return fmt.Sprintf("unit line %d: not Key=Value: %s", e.line, e.text)
}

// verifyUnit runs systemd-analyze verify (when installed) on a copy whose
// ExecStart points at an existing binary; any complaint fails the test.
func verifyUnit(t *testing.T, path string, b []byte) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit checked by the parser only")
		return
	}
	tmp := filepath.Join(t.TempDir(), filepath.Base(path))
	fixed := strings.ReplaceAll(string(b), "/usr/local/bin/aimwan ", "/bin/true ")
	if err := os.WriteFile(tmp, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "verify", tmp).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(path), err, out)
	}
}

// TestAlertRulesPromtool: promtool (Debian's prometheus package) accepts the
// rules and the scrape configuration, and the rules' unit tests pass
// (aimwan-alerts_test.yml: RPO over the threshold, a stalled link, full
// buffers, pull-ahead, a daemon down, and a quiet caught-up volume that raises
// nothing). In CI (CI set) a missing promtool fails the test.
func TestAlertRulesPromtool(t *testing.T) {
	bin := testkit.NeedTool(t, "promtool", "prometheus")
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "aimwan-alerts.yml"},
		{"check", "config", "scrape.yml"},
		{"test", "rules", "aimwan-alerts_test.yml"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
