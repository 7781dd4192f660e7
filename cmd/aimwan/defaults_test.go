package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/proxy"
)

// repoFile reads a file of the repository (relative to its root).
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricsDefaults are the daemons' default metrics addresses, as the code
// has them, by the name docs/metrics.md gives each daemon.
var metricsDefaults = map[string]string{
	"aimwan src":                     aimsrc.DefaultMetricsAddr,
	"aimwan dst":                     dstDefaultMetrics,
	"aimwan proxy, source edge":      proxy.DefaultSourceMetrics,
	"aimwan proxy, destination edge": proxy.DefaultDestMetrics,
	"aimwan sim link":                simLinkDefaultMetrics,
}

// scrapeJobs are the jobs deploy/prometheus/scrape.yml must have and the
// targets each must list: the defaults of the four daemons of the chain.
var scrapeJobs = map[string][]string{
	"aimwan-src":   {aimsrc.DefaultMetricsAddr},
	"aimwan-proxy": {proxy.DefaultSourceMetrics, proxy.DefaultDestMetrics},
	"aimwan-dst":   {dstDefaultMetrics},
}

// TestDefaultAddresses: every daemon has its own default metrics port; the
// shipped scrape configuration targets exactly those of src, both proxies
// and dst; docs/metrics.md's table and docs/deployment.md's port list say
// the same; and no stale metrics address is left in the docs or deploy/.
func TestDefaultAddresses(t *testing.T) {
	seen := map[string]string{}
	for d, a := range metricsDefaults {
		if other, dup := seen[a]; dup {
			t.Errorf("%s and %s both default to metrics address %s", d, other, a)
		}
		seen[a] = d
	}

	var sc struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(repoFile(t, "deploy/prometheus/scrape.yml")), &sc); err != nil {
		t.Fatalf("scrape.yml: %v", err)
	}
	got := map[string][]string{}
	for _, j := range sc.ScrapeConfigs {
		for _, s := range j.StaticConfigs {
			got[j.JobName] = append(got[j.JobName], s.Targets...)
		}
	}
	for job, want := range scrapeJobs {
		g := slices.Clone(got[job])
		sort.Strings(g)
		w := slices.Clone(want)
		sort.Strings(w)
		if !slices.Equal(g, w) {
			t.Errorf("scrape.yml job %s targets %v, want the daemons' defaults %v", job, got[job], want)
		}
	}
	for job := range got {
		if _, ok := scrapeJobs[job]; !ok {
			t.Errorf("scrape.yml has job %s that no default daemon serves", job)
		}
	}

	// docs/metrics.md, "Default addresses": | daemon | `addr` | job |
	rows := mdTableRows(t, repoFile(t, "docs/metrics.md"), "## Default addresses")
	documented := map[string]string{}
	for _, r := range rows {
		documented[strings.ReplaceAll(r[0], "`", "")] = strings.Trim(r[1], "`")
	}
	for d, a := range metricsDefaults {
		if documented[d] != a {
			t.Errorf("docs/metrics.md gives %s the metrics address %q, the code %q", d, documented[d], a)
		}
	}

	// docs/deployment.md, "Ports and addresses (defaults)": | daemon | what | default |
	listens := map[string][]string{
		"src":                     {aimsrc.DefaultNBDAddr, aimsrc.DefaultPushAddr, aimsrc.DefaultControlAddr, aimsrc.DefaultMetricsAddr},
		"proxy, source edge":      {proxy.DefaultLANListen, proxy.DefaultSourceMetrics},
		"proxy, destination edge": {proxy.DefaultWANListen, proxy.DefaultLANForward, proxy.DefaultDestMetrics},
		"dst":                     {dstDefaultListen, dstDefaultControl, dstDefaultMetrics},
		"sim link (test lab)":     {simLinkDefaultListen, simLinkDefaultMetrics},
	}
	covered := map[string]bool{}
	for _, r := range mdTableRows(t, repoFile(t, "docs/deployment.md"), "## Ports and addresses (defaults)") {
		want, ok := listens[r[0]]
		switch {
		case !ok:
			t.Errorf("docs/deployment.md port list: unknown daemon %q", r[0])
		case !slices.Contains(want, r[2]):
			t.Errorf("docs/deployment.md port list: %s %s = %s, not one of its defaults %v", r[0], r[1], r[2], want)
		case strings.HasPrefix(r[1], "metrics") && r[2] != want[len(want)-1]:
			t.Errorf("docs/deployment.md port list: %s metrics = %s, want %s", r[0], r[2], want[len(want)-1])
		}
		covered[r[0]+" "+r[2]] = true
	}
	for d, addrs := range listens {
		for _, a := range addrs {
			if !covered[d+" "+a] {
				t.Errorf("docs/deployment.md port list lacks %s %s", d, a)
			}
		}
	}

	// No other metrics port (97xx) anywhere users read.
	re := regexp.MustCompile(`127\.0\.0\.1:97\d\d`)
	for _, f := range []string{"deploy/prometheus/scrape.yml", "docs/metrics.md", "docs/deployment.md", "docs/source-node.md",
		"docs/destination-node.md", "docs/link-simulator.md", "deploy/README.md", "README.md"} {
		for _, a := range re.FindAllString(repoFile(t, f), -1) {
			if _, ok := seen[a]; !ok {
				t.Errorf("%s names metrics address %s, which no daemon uses by default", f, a)
			}
		}
	}
}

// mdTableRows returns the body rows of the first Markdown table after the
// heading, as trimmed cells.
func mdTableRows(t *testing.T, doc, heading string) [][]string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, heading+"\n")
	if !ok {
		t.Fatalf("no heading %q", heading)
	}
	var rows [][]string
	inTable := false
	for _, line := range strings.Split(rest, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		if !inTable { // the header row
			inTable = true
			continue
		}
		if strings.HasPrefix(line, "|---") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("no table under %q", heading)
	}
	return rows
}
