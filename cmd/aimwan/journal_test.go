package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aimwan/aimwan/journal"
)

// writeJournal makes one sealed journal file with every kind of record.
func writeJournal(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var name string
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: dir, Volume: "vol1", VolumeSize: 1 << 20,
		OnSeal: func(f journal.SealedFile) { name = f.Name }})
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() (uint64, error){
		func() (uint64, error) { return w.Write(4096, []byte("hello")) },
		func() (uint64, error) { return w.Zero(0, 8192, false) },
		func() (uint64, error) { return w.Zero(8192, 4096, true) },
		func() (uint64, error) { return w.Marker(journal.Record{Kind: journal.KindSnapshot, Label: "daily"}) },
		func() (uint64, error) {
			return w.Marker(journal.Record{Kind: journal.KindCustom, Label: "app", Args: []journal.KV{{Key: "db", Value: "a b"}}, Group: "g", GroupSeq: 2})
		},
	}
	for _, s := range steps {
		if _, err := s(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

func TestJournalInspect(t *testing.T) {
	path := writeJournal(t)
	var out bytes.Buffer
	if err := journalMain(context.Background(), []string{"inspect", path}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5+5 || !strings.Contains(lines[0], "valid journal file") || !strings.Contains(lines[2], "format version 3, stream ") {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, want := range []string{"write    off=4096 len=5", "zero     off=0 len=8192", "trim", "snapshot label=daily", `custom   label=app group=g group_seq=2 args=db="a b"`} {
		if !strings.Contains(lines[5+i], want) {
			t.Fatalf("record line %d = %q, want %q", i, lines[5+i], want)
		}
	}

	out.Reset()
	if err := journalMain(context.Background(), []string{"inspect", "--json", "--volume", "vol1", path}, &out); err != nil {
		t.Fatal(err)
	}
	var doc inspectJSON
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	if !doc.Valid || doc.Volume != "vol1" || len(doc.Records) != 5 || doc.Records[4].Args[0].Key != "db" || *doc.Records[0].Length != 5 {
		t.Fatalf("json doc = %+v", doc)
	}
}

func TestJournalInspectErrors(t *testing.T) {
	path := writeJournal(t)
	b, _ := os.ReadFile(path)
	cut := filepath.Join(t.TempDir(), "cut.aimj")
	os.WriteFile(cut, b[:len(b)-1], 0o644)
	flipped := filepath.Join(t.TempDir(), journal.FileName(1))
	b[200] ^= 1
	os.WriteFile(flipped, b, 0o644)
	tests := []struct {
		name string
		args []string
		is   error
		code int
	}{
		{"truncated", []string{"inspect", cut}, journal.ErrTruncated, exitFailure},
		{"corrupt", []string{"inspect", "--json", flipped}, journal.ErrCorrupt, exitFailure},
		{"wrong volume", []string{"inspect", "--volume", "vol2", path}, journal.ErrWrongVolume, exitFailure},
		{"missing file", []string{"inspect", filepath.Join(t.TempDir(), "none.aimj")}, os.ErrNotExist, exitFailure},
		{"no subcommand", nil, nil, exitUsage},
		{"unknown subcommand", []string{"frobnicate"}, nil, exitUsage},
		{"no file", []string{"inspect"}, nil, exitUsage},
		{"two files", []string{"inspect", path, path}, nil, exitUsage},
		{"bad flag", []string{"inspect", "--nope", path}, nil, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := journalMain(context.Background(), tt.args, &out)
			if err == nil || exitCode(err) != tt.code || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err = %v (exit %d), want %v (exit %d)", err, exitCode(err), tt.is, tt.code)
			}
			if tt.is != nil && tt.is != os.ErrNotExist && !strings.Contains(err.Error(), filepath.Base(tt.args[len(tt.args)-1])) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

func TestJournalRegistered(t *testing.T) {
	c, ok := commands["journal"]
	if !ok || c.Run == nil {
		t.Fatal("journal command not registered")
	}
	if err := c.Run(context.Background(), []string{"inspect"}); exitCode(err) != exitUsage {
		t.Fatalf("Run(inspect) = %v, want a usage error", err)
	}
}
