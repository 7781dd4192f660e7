package sizing

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func loadStudy(t *testing.T, path string) (*Study, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f File
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	return f.Study(filepath.Dir(path))
}

func TestStudyFile(t *testing.T) {
	st, err := loadStudy(t, "testdata/study.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := st.Model
	if m.Rate != 250_000 || m.CrossHourly[5] != 70_000 || m.Reduction != 4 || m.Buffer != 50<<30 {
		t.Errorf("line %+v", m)
	}
	if len(m.Volumes) != 2 || m.Volumes[1].Bursts[0].At != 48*time.Hour || m.Volumes[1].Hourly[3] != 100<<20 {
		t.Errorf("volumes %+v", m.Volumes)
	}
	var day float64
	for _, h := range m.Volumes[0].Hourly {
		day += h
	}
	near(t, "erp bytes a day", day, 8<<30, 1)
	near(t, "erp 10:00 share", m.Volumes[0].Hourly[10], float64(8<<30)*6/76, 1)
	if !st.Sweep || st.RPO != time.Hour || len(st.Rates) != 4 || len(st.Schedules) != 2 {
		t.Errorf("sweep %+v", st)
	}
	if r, err := Run(m); err != nil || r.PeakBacklog <= 0 {
		t.Errorf("Run: %v (peak %v)", err, r)
	}
}

func TestStudyBenchResult(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "result.json"), []byte(`{"logical_bytes": 1420, "wire_bytes": 100, "speedup": 14.2}`), 0o644)
	f := File{BenchResult: "result.json", Line: FileLine{Rate: "2mbit"}, Volumes: []FileVol{{Name: "a", Daily: "1GiB"}}}
	st, err := f.Study(dir)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "reduction", st.Model.Reduction, 14.2, 1e-9)
}

func TestStudyErrors(t *testing.T) {
	vol := []FileVol{{Name: "a", Daily: "1GiB"}}
	cases := []struct {
		name string
		f    File
	}{
		{"bad rate", File{Line: FileLine{Rate: "fast"}, Volumes: vol}},
		{"bad duration", File{Duration: "a week", Line: FileLine{Rate: "2mbit"}, Volumes: vol}},
		{"profile length", File{Line: FileLine{Rate: "2mbit"}, Volumes: []FileVol{{Name: "a", Daily: "1G", Profile: []float64{1, 2}}}}},
		{"daily and hourly", File{Line: FileLine{Rate: "2mbit"}, Volumes: []FileVol{{Name: "a", Daily: "1G", Hourly: []string{"1G"}}}}},
		{"bad schedule", File{Line: FileLine{Rate: "2mbit"}, Schedule: "sometimes 2mbit", Volumes: vol}},
		{"missing bench result", File{BenchResult: "nope.json", Line: FileLine{Rate: "2mbit"}, Volumes: vol}},
		{"cross twice", File{Line: FileLine{Rate: "2mbit", Cross: "1KB/s", CrossHourly: []string{"1KB/s"}}, Volumes: vol}},
		{"sweep without rpo", File{Line: FileLine{Rate: "2mbit"}, Volumes: vol, Sweep: &FileSweep{}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.f.Study(t.TempDir()); !errors.Is(err, ErrBadModel) {
				t.Fatalf("Study = %v, want ErrBadModel", err)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		err  bool
	}{{"7d", 7 * 24 * time.Hour, false}, {"1.5d", 36 * time.Hour, false}, {"15m", 15 * time.Minute, false}, {"-1h", 0, true}, {"d", 0, true}, {"", 0, true}}
	for _, c := range cases {
		got, err := ParseDuration(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"7d", "36h", "1.5d", "-2d", "NaNd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("ParseDuration(%q) = %v, negative", s, d)
		}
	})
}

func TestStudyFileFiles(t *testing.T) {
	dir := t.TempDir()
	base := "line: {rate: 1MB/s}\nduration: 1h\nstep: 1s\nvolumes: [{name: a, bursts: [{at: 0s, size: 8MiB}]}]\n"
	tests := []struct {
		name, files string
		ok          bool
	}{
		{"file model", "files: {size: 4MiB, age: 5s, window: 2}\n", true},
		{"no size", "files: {window: 2}\n", false},
		{"bad age", "files: {size: 4MiB, age: soon}\n", false},
		{"negative window", "files: {size: 4MiB, window: -1}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "s.yaml")
			if err := os.WriteFile(path, []byte(base+tt.files), 0o644); err != nil {
				t.Fatal(err)
			}
			st, err := loadStudy(t, path)
			if !tt.ok {
				if !errors.Is(err, ErrBadModel) {
					t.Errorf("err %v, want ErrBadModel", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := st.Model
			if m.FileSize != 4<<20 || m.FileAge != 5*time.Second || m.Window != 2 {
				t.Errorf("file model %v %v %d", m.FileSize, m.FileAge, m.Window)
			}
			r, err := Run(m)
			if err != nil {
				t.Fatal(err)
			}
			// 8 MiB at 1 MB/s: two files, all of it at once in Src Data, gone within the hour.
			if r.PeakBacklog != 8<<20 || r.Volumes[0].FinalBacklog != 0 {
				t.Errorf("peak %v, final %v", r.PeakBacklog, r.Volumes[0].FinalBacklog)
			}
		})
	}
}

// FuzzStudy: any YAML either is refused with ErrBadModel (or a YAML error)
// or gives a model that runs without panicking.
func FuzzStudy(f *testing.F) {
	for _, s := range []string{
		"line: {rate: 1MB/s}\nduration: 1h\nstep: 1s\nvolumes: [{name: a, bursts: [{at: 0s, size: 8MiB}]}]\n",
		"line: {rate: 1MB/s}\nduration: 10m\nstep: 1s\nfiles: {size: 4MiB}\nvolumes: [{name: a, daily: 1GiB}]\n",
		"line: {rate: 2mbit, cross: 70KB/s}\nduration: 1d\nstep: 10m\nbuffer: 1GiB\nvolumes: [{name: a, daily: 8GiB, weekend: 0}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fl File
		if err := yaml.Unmarshal(b, &fl); err != nil {
			return
		}
		fl.BenchResult, fl.Sweep = "", nil // no files, no sweeps
		st, err := fl.Study(t.TempDir())
		if err != nil {
			if !errors.Is(err, ErrBadModel) {
				t.Fatalf("Study: %v, not ErrBadModel", err)
			}
			return
		}
		m := st.Model.withDefaults()
		if m.Step <= 0 || m.Duration/m.Step > 20_000 {
			return // valid, but too long to run in a fuzz iteration
		}
		if _, err := Run(st.Model); err != nil && !errors.Is(err, ErrBadModel) {
			t.Fatalf("Run: %v, not ErrBadModel", err)
		}
	})
}
