package aimsrc

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
)

// TestMetrics scrapes the metrics endpoint and checks the recording.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20})
	cfg.Metrics = "127.0.0.1:0"
	cfg.Record = filepath.Join(dir, "rec")
	cfg.FileAge = 50 * time.Millisecond
	n, stop := runNode(t, cfg)
	cl := mustDialNBD(t, n.NBDAddr().String(), "v1")
	if err := cl.write(make([]byte, 8192), 0); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	testkit.WaitFor(t, 10*time.Second, "the write sealed and waiting", func() bool {
		return n.Status().Volumes[0].FilesWaiting == 1
	})
	st := n.Status().Volumes[0]
	if st.OldestUnsent == nil || st.OldestUnsent.After(time.Now()) || st.OldestUnsent.Before(before.Add(-time.Second)) ||
		st.SrcDataBytes < 8192 {
		t.Fatalf("status %+v: want the write's time as oldest unsent and its file as Src Data", st)
	}
	resp, err := http.Get("http://" + n.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`aimwan_src_data_bytes{volume="v1"}`,
		`aimwan_src_oldest_unsent_seconds{volume="v1"}`,
		`aimwan_src_files_waiting{volume="v1"} 1`,
		`aimwan_src_state{state="normal",volume="v1"} 1`,
		`aimwan_src_writes_captured_total{volume="v1"} 1`,
		`aimwan_src_bytes_captured_total{volume="v1"} 8192`,
		`aimwan_src_buffer_limit_bytes 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	stop()
	rec := filepath.Join(cfg.Record, "srctest.jsonl")
	testkit.WaitFor(t, 5*time.Second, "recording", func() bool {
		b, err := os.ReadFile(rec)
		return err == nil && strings.Contains(string(b), "aimwan_src_data_bytes")
	})
}
