package aimdst

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aimwan/aimwan/internal/ctlapi"
)

func testutilCounter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

// TestMetricsAndStatus checks the gauges (Time Latency from the source
// timestamp, buffer bytes, destaged seq, files waiting), the logical bytes
// counter, and the control endpoint.
func TestMetricsAndStatus(t *testing.T) {
	g := smallJournal(t, 9, nil)
	reg := prometheus.NewRegistry()
	var now time.Time
	tn := newTestNode(t, func(c *Config) {
		c.Registerer = reg
		c.Now = func() time.Time { return now }
	})
	for _, p := range g.files[1:] {
		if err := deliver(t, tn.n, "vol", p, 1<<30); err != nil {
			t.Fatal(err)
		}
	}
	st := tn.n.Status().Volumes[0]
	if st.FilesWaiting != len(g.files)-1 || st.BufferBytes == 0 || len(st.Gaps) != 1 || st.Gaps[0] != (Gap{1, 1}) {
		t.Fatalf("before file 1: %+v", st)
	}
	if err := deliver(t, tn.n, "vol", g.files[0], 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	st = tn.n.Status().Volumes[0]
	now = st.NewestWrite.Add(3 * time.Second)
	want := `
# HELP aimwan_time_latency_seconds Time Latency: now minus the source timestamp of the newest destaged write.
# TYPE aimwan_time_latency_seconds gauge
aimwan_time_latency_seconds{volume="vol"} 3
# HELP aimwan_dst_files_waiting Journal files held in the destination buffer waiting for destage.
# TYPE aimwan_dst_files_waiting gauge
aimwan_dst_files_waiting{volume="vol"} 0
# HELP aimwan_dst_buffer_bytes Bytes held in the destination buffer (received, not yet destaged, partial files included).
# TYPE aimwan_dst_buffer_bytes gauge
aimwan_dst_buffer_bytes{volume="vol"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "aimwan_time_latency_seconds",
		"aimwan_dst_files_waiting", "aimwan_dst_buffer_bytes"); err != nil {
		t.Fatal(err)
	}
	if seq := gaugeValue(t, reg, "aimwan_dst_destaged_seq"); seq != float64(st.DestagedSeq) || seq < 30 {
		t.Fatalf("destaged seq metric %v, status %d", seq, st.DestagedSeq)
	}
	if lb := testutil.ToFloat64(tn.n.metrics.logicalBytes); lb <= 0 || lb != float64(st.LogicalBytes) {
		t.Fatalf("logical bytes %v, status %d", lb, st.LogicalBytes)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	token, err := ctlapi.WriteToken(tn.n.TokenPath())
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- serveControl(ctx, ln, tn.n, token, discardLog()) }()
	if _, err := FetchStatus(context.Background(), ln.Addr().String(), filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("status without the token file answered")
	}
	got, err := FetchStatus(context.Background(), ln.Addr().String(), tn.n.TokenPath())
	cancel()
	if serr := <-done; serr != nil {
		t.Fatal(serr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Volumes) != 1 || got.Volumes[0].DestagedSeq != st.DestagedSeq || got.Volumes[0].TimeLatency != 3 {
		t.Fatalf("status over the control endpoint: %+v", got)
	}
}

func gaugeValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// TestMetricNamesLint checks the node's metrics against Prometheus naming
// rules.
func TestMetricNamesLint(t *testing.T) {
	tn := newTestNode(t, nil)
	for _, c := range append(tn.n.metrics.collectors(), statusCollector{tn.n}) {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("metric %s: %s", p.Metric, p.Text)
		}
	}
}
