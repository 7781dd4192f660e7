package sizing

import (
	"os"
	"testing"
)

func TestZZFluid(t *testing.T) {
	dir := os.Getenv("SZ_DIR")
	if dir == "" {
		t.Skip()
	}
	v, err := FromBench(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := v.Model
	m.FileSize = 0
	r, err := Run(m)
	if err != nil {
		t.Fatal(err)
	}
	fl := 0.0
	for _, x := range r.Volumes {
		fl = max(fl, x.FinalLatency)
	}
	t.Logf("fluid: peak %.4g (meas %.4g, %+.1f%%), end %.1f, final lat %.1f (meas %.1f), final backlog %.4g", r.PeakBacklog, v.Measured.PeakBacklog, 100*(r.PeakBacklog/v.Measured.PeakBacklog-1), r.End, fl, v.Measured.FinalLatency, r.Samples[len(r.Samples)-1].Total)
}
