package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aimwan/aimwan/internal/version"
)

func TestServeMetricsListener(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aimwan_src_data_bytes", Help: "Bytes waiting."}, []string{"volume"})
	reg.MustRegister(g)
	g.WithLabelValues("vm1").Set(42)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ServeMetricsListener(ctx, ln, reg, slog.New(slog.DiscardHandler)) }()

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `aimwan_src_data_bytes{volume="vm1"} 42`) {
		t.Fatalf("body lacks the gauge:\n%s", body)
	}
	// Every daemon's /metrics also carries the Go runtime, the process and
	// the build, with the types Prometheus expects.
	in := version.Get()
	for _, want := range []string{
		"# TYPE go_goroutines gauge", "# TYPE go_gc_duration_seconds summary",
		"# TYPE process_cpu_seconds_total counter", "# TYPE process_resident_memory_bytes gauge",
		"# TYPE " + BuildInfo + " gauge",
		fmt.Sprintf(`%s{goversion=%q,revision=%q,version=%q} 1`, BuildInfo, in.GoVersion, in.Revision, in.Version),
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeMetricsListener: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeMetricsListener did not return after cancel")
	}
}

func TestServeMetricsAddr(t *testing.T) {
	reg := prometheus.NewRegistry()
	t.Run("empty addr waits for ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for _, addr := range []string{"", "off"} {
			if err := ServeMetrics(ctx, addr, reg, nil); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("loopback ends on cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var logs bytes.Buffer
		done := make(chan error, 1)
		go func() { done <- ServeMetrics(ctx, "127.0.0.1:0", reg, slog.New(slog.NewTextHandler(&logs, nil))) }()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), "non-loopback") {
			t.Fatalf("warned for loopback: %s", logs.String())
		}
	})
	t.Run("non-loopback warns", func(t *testing.T) {
		// 192.0.2.1 (TEST-NET-1) is not ours, so the listen fails after the warning
		// and nothing is exposed.
		var logs bytes.Buffer
		err := ServeMetrics(t.Context(), "192.0.2.1:0", reg, slog.New(slog.NewTextHandler(&logs, nil)))
		if !strings.Contains(logs.String(), "non-loopback") {
			t.Errorf("no warning logged: %q", logs.String())
		}
		if err == nil {
			t.Error("listening on a foreign address succeeded")
		}
	})
	t.Run("nil gatherer", func(t *testing.T) {
		if err := ServeMetrics(t.Context(), "127.0.0.1:0", nil, nil); err == nil {
			t.Fatal("no error")
		}
	})
}

// TestRuntimeGathererLint: the build-info metric follows the naming rules
// (promlint), and the runtime gatherer is one per process.
func TestRuntimeGathererLint(t *testing.T) {
	problems, err := testutil.CollectAndLint(newBuildInfoCollector(version.Get()))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if RuntimeGatherer() != RuntimeGatherer() {
		t.Error("RuntimeGatherer is not one registry per process")
	}
	if _, err := RuntimeGatherer().Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
}
