package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
)

// netnsEnv marks the copy of the test binary that runs inside its own
// network namespace; netnsBinEnv hands it the aimwan binary already built.
const (
	netnsEnv    = "AIMWAN_E2E_IN_NETNS"
	netnsBinEnv = "AIMWAN_E2E_BIN"
)

// Default metrics addresses as deploy/prometheus/scrape.yml lists them, by
// scrape job (cmd/aimwan's TestDefaultAddresses ties them to the daemons).
var defaultTargets = map[string][]string{
	"aimwan-src":   {"127.0.0.1:9701"},
	"aimwan-proxy": {"127.0.0.1:9711", "127.0.0.1:9712"},
	"aimwan-dst":   {"127.0.0.1:9702"},
}

// TestPrometheusScrapesDefaults: the monitoring kit works unmodified. In a
// network namespace of its own (so the default ports are free on this shared
// machine), the four daemons run with their default addresses, a real
// Prometheus (Debian's /usr/bin/prometheus) runs with the shipped
// deploy/prometheus/scrape.yml and alert rules as they are, and its HTTP API
// must report up == 1 for src, both proxies and dst; every daemon serves
// aimwan_build_info and the Go and process collectors, the proxies label
// their metrics with their role, promtool finds nothing to lint in any
// /metrics, and the idle, caught-up chain raises no alert.
func TestPrometheusScrapesDefaults(t *testing.T) {
	prom := testkit.NeedTool(t, "prometheus", "prometheus")
	promtool := testkit.NeedTool(t, "promtool", "prometheus")
	if os.Getenv(netnsEnv) == "" {
		runInNetns(t)
		return
	}
	dir := t.TempDir()
	// Default addresses; every daemon has its identity and pins its neighbours.
	dst := StartProc(t, "dst", "dst", "--buffer", filepath.Join(dir, "dst-buffer"), "--snapshots", filepath.Join(dir, "snapshots"),
		"--volume", "vm1="+filepath.Join(dir, "dst-vm1.img")+",create", "--key", Keys.Dst.Dir, "--peer-fp", Keys.ProxyDst.FP)
	WaitPort(t, "127.0.0.1:9702", dst)
	pdst := StartProc(t, "proxy-destination", "proxy", "--lan-forward", "127.0.0.1:7800", "--key", Keys.ProxyDst.Dir,
		"--peer-fp", Keys.ProxySrc.FP, "--lan-peer-fp", Keys.Dst.FP, "--cache", filepath.Join(dir, "cache-dst"))
	WaitPort(t, "127.0.0.1:9712", pdst)
	psrc := StartProc(t, "proxy-source", "proxy", "--wan-peer", "127.0.0.1:7820", "--key", Keys.ProxySrc.Dir,
		"--peer-fp", Keys.ProxyDst.FP, "--lan-peer-fp", Keys.Src.FP, "--cache", filepath.Join(dir, "cache-src"))
	WaitPort(t, "127.0.0.1:9711", psrc)
	src := StartProc(t, "src", "src", "--buffer", filepath.Join(dir, "src-buffer"), "--push", "127.0.0.1:7810",
		"--volume", "vm1="+filepath.Join(dir, "src-vm1.img")+",size=4MiB", "--key", Keys.Src.Dir, "--peer-fp", Keys.ProxySrc.FP)
	WaitPort(t, "127.0.0.1:9701", src)

	// Prometheus with the shipped files, unmodified, in a folder of its own.
	cfgDir := filepath.Join(dir, "prometheus")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"scrape.yml", "aimwan-alerts.yml"} {
		b, err := os.ReadFile(filepath.Join("..", "deploy", "prometheus", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfgDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const api = "127.0.0.1:9090"
	testkit.StartProc(t, prom, "prometheus", "--config.file="+filepath.Join(cfgDir, "scrape.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+api)

	// The shipped scrape interval is 15 s: every target is scraped within it.
	var upAt time.Time
	var lastUp map[string]string
	t.Cleanup(func() {
		if upAt.IsZero() {
			t.Logf("last up seen: %v", lastUp)
		}
	})
	Eventually(t, 90*time.Second, "up == 1 for src, both proxies and dst", func() (bool, error) {
		up, err := promQuery(api, "up")
		if err != nil {
			return false, nil // Prometheus still starting
		}
		lastUp = up
		for job, targets := range defaultTargets {
			for _, tg := range targets {
				if up[job+" "+tg] != "1" {
					return false, nil
				}
			}
		}
		if len(up) != 4 {
			return false, fmt.Errorf("up has %d series, want 4: %v", len(up), up)
		}
		upAt = time.Now()
		t.Logf("up: %v", up)
		return true, nil
	})

	// What every target serves: build info, the Go and process collectors,
	// and the proxies' role label.
	for query, want := range map[string]int{
		"aimwan_build_info":                                 4,
		"go_goroutines":                                     4,
		"process_resident_memory_bytes":                     4,
		`aimwan_proxy_wire_bytes_total{role="source"}`:      1,
		`aimwan_proxy_wire_bytes_total{role="destination"}`: 1,
	} {
		got, err := promQuery(api, query)
		if err != nil || len(got) != want {
			t.Errorf("query %s: %d series (%v), want %d", query, len(got), err, want)
		}
	}
	for _, targets := range defaultTargets {
		for _, tg := range targets {
			lintMetrics(t, promtool, tg)
		}
	}

	// A rule evaluation after every target was up: an idle, caught-up chain
	// raises no alert, not even a pending one.
	Eventually(t, 60*time.Second, "an evaluation of the alert rules", func() (bool, error) {
		last, err := lastRuleEvaluation(api)
		return err == nil && last.After(upAt), nil
	})
	if alerts := promAlerts(t, api); len(alerts) > 0 {
		t.Errorf("alerts on an idle chain: %s", alerts)
	}
}

// runInNetns runs this test again, in a new network namespace whose
// loopback is up, with the aimwan binary already built, and fails with its
// output when it fails. Without the privilege to make a namespace the test
// is skipped (outside CI) or fails (in CI).
func runInNetns(t *testing.T) {
	t.Helper()
	unshare := testkit.NeedTool(t, "unshare", "util-linux")
	testkit.NeedTool(t, "ip", "iproute2")
	args := []string{"--net"}
	if os.Geteuid() != 0 {
		args = append(args, "--map-root-user")
	}
	probe := exec.Command(unshare, append(args, "true")...)
	if out, err := probe.CombinedOutput(); err != nil {
		testkit.SkipOrFail(t, fmt.Sprintf("cannot make a network namespace (%v: %s)", err, bytes.TrimSpace(out)))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	args = append(args, "sh", "-c", `ip link set lo up && exec "$0" "$@"`, os.Args[0],
		"-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=3m")
	cmd := exec.CommandContext(ctx, unshare, args...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1", netnsBinEnv+"="+aimwanBin)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s in a network namespace: %v\n%s", t.Name(), err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "up: map[") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

// promAPI GETs a Prometheus HTTP API path and decodes its data.
func promAPI(api, path string, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: %w: %.200s", path, err, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s %s", path, env.Status, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// promQuery runs an instant query and returns "job instance" -> value.
func promQuery(api, query string) (map[string]string, error) {
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := promAPI(api, "/api/v1/query?query="+url.QueryEscape(query), &data); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range data.Result {
		out[r.Metric["job"]+" "+r.Metric["instance"]] = fmt.Sprint(r.Value[1])
	}
	return out, nil
}

// lastRuleEvaluation is the oldest of the rule groups' last evaluations.
func lastRuleEvaluation(api string) (time.Time, error) {
	var data struct {
		Groups []struct {
			LastEvaluation time.Time `json:"lastEvaluation"`
		} `json:"groups"`
	}
	if err := promAPI(api, "/api/v1/rules", &data); err != nil {
		return time.Time{}, err
	}
	if len(data.Groups) == 0 {
		return time.Time{}, fmt.Errorf("no rule groups loaded")
	}
	oldest := data.Groups[0].LastEvaluation
	for _, g := range data.Groups {
		if g.LastEvaluation.Before(oldest) {
			oldest = g.LastEvaluation
		}
	}
	return oldest, nil
}

// promAlerts lists the pending and firing alerts as "name{labels} state".
func promAlerts(t *testing.T, api string) []string {
	t.Helper()
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := promAPI(api, "/api/v1/alerts", &data); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range data.Alerts {
		out = append(out, fmt.Sprintf("%s%v %s", a.Labels["alertname"], a.Labels, a.State))
	}
	return out
}

// lintMetrics runs promtool check metrics on a daemon's /metrics: names,
// types and help follow Prometheus' conventions.
func lintMetrics(t *testing.T, promtool, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("scrape %s: %v", addr, err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	if err != nil {
		t.Errorf("scrape %s: %v", addr, err)
		return
	}
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on %s: %v\n%s", addr, err, out)
	}
}
