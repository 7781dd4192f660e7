package journal

import (
	"errors"
	"strings"
	"testing"
)

// TestParseRejectsPathNames: a well-sealed file (valid SHA-256, as a hostile
// sender can make) whose marker label, group or custom-marker argument key
// would act as a path (dst builds <snapshots>/<volume>/<label>.img) is
// refused with ErrCorrupt, naming the file and the field.
func TestParseRejectsPathNames(t *testing.T) {
	h, recs, payload := sampleFile()
	const snap, custom = 4, 5 // indexes in sampleFile
	tests := []struct {
		name  string
		mut   func(rs []Record)
		fault string
	}{
		{"snapshot label ../x", func(rs []Record) { rs[snap].Label = "../x" }, "label"},
		{"snapshot label ../../etc/cron.d/x", func(rs []Record) { rs[snap].Label = "../../etc/cron.d/x" }, "label"},
		{"snapshot label a/b", func(rs []Record) { rs[snap].Label = "a/b" }, "label"},
		{"snapshot label /abs", func(rs []Record) { rs[snap].Label = "/abs" }, "label"},
		{"snapshot label ..", func(rs []Record) { rs[snap].Label = ".." }, "label"},
		{"empty snapshot label", func(rs []Record) { rs[snap].Label = "" }, "label"},
		{"snapshot label with NUL", func(rs []Record) { rs[snap].Label = "a\x00b" }, "label"},
		{"custom label ../x", func(rs []Record) { rs[custom].Label = "../x" }, "label"},
		{"group ../g", func(rs []Record) { rs[custom].Group = "../g" }, "group"},
		{"argument key ../x", func(rs []Record) { rs[custom].Args = []KV{{"../x", "v"}} }, "key"},
		{"argument key a=b (hook environment)", func(rs []Record) { rs[custom].Args = []KV{{"a=b", "v"}} }, "key"},
		{"label of 65 characters", func(rs []Record) { rs[snap].Label = strings.Repeat("a", 65) }, "label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := append([]Record(nil), recs...)
			tt.mut(rs)
			_, err := Parse(FileName(h.FileSeq), encodeRaw(h, rs, payload))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), FileName(h.FileSeq)) || !strings.Contains(err.Error(), tt.fault) {
				t.Errorf("err = %q, want it to name the file and %q", err, tt.fault)
			}
		})
	}
}

// TestWriterRefusesPathNames: the writer never journals a marker whose
// label or group is not a valid name.
func TestWriterRefusesPathNames(t *testing.T) {
	w, _, err := OpenWriter(WriterConfig{Dir: t.TempDir(), Volume: "v", VolumeSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, m := range []Record{
		{Kind: KindSnapshot, Label: "../x"},
		{Kind: KindSnapshot, Label: "a/b"},
		{Kind: KindCustom, Label: "ok", Group: "../g", GroupSeq: 1},
		{Kind: KindCustom, Label: "../hook"},
	} {
		if _, err := w.Marker(m); err == nil {
			t.Errorf("marker %+v accepted", m)
		}
	}
}
