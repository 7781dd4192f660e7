package workload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func mustTemplate(t *testing.T, cfg Config) *Template {
	t.Helper()
	tm, err := NewTemplate(cfg)
	if err != nil {
		t.Fatalf("NewTemplate(%+v): %v", cfg, err)
	}
	return tm
}

func readAll(t *testing.T, im *Image) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := im.WriteTo(&b)
	if err != nil || n != im.Size() {
		t.Fatalf("WriteTo: n=%d err=%v, want %d bytes", n, err, im.Size())
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Size: 4 << 20, Seed: 7}
	a := readAll(t, mustTemplate(t, cfg).Image())
	b := readAll(t, mustTemplate(t, cfg).Image())
	if !bytes.Equal(a, b) {
		t.Fatal("same seed gave different templates")
	}
	c := readAll(t, mustTemplate(t, Config{Size: 4 << 20, Seed: 8}).Image())
	if bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same template")
	}
	c1 := readAll(t, mustTemplate(t, cfg).Clone(1))
	c1b := readAll(t, mustTemplate(t, cfg).Clone(1))
	c2 := readAll(t, mustTemplate(t, cfg).Clone(2))
	if !bytes.Equal(c1, c1b) {
		t.Fatal("clone 1 is not reproducible")
	}
	if bytes.Equal(c1, c2) || bytes.Equal(c1, a) {
		t.Fatal("clones are not distinct from each other and from the template")
	}
}

func TestReadAtMatchesWriteTo(t *testing.T) {
	im := mustTemplate(t, Config{Size: 1 << 20, Seed: 3}).Clone(1)
	all := readAll(t, im)
	cases := []struct {
		name string
		off  int64
		n    int
	}{
		{"aligned block", 4096, 4096},
		{"unaligned span", 4000, 9000},
		{"one byte", 123457, 1},
		{"tail", im.Size() - 10, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := make([]byte, c.n)
			n, err := im.ReadAt(p, c.off)
			if err != nil || n != c.n {
				t.Fatalf("ReadAt: n=%d err=%v", n, err)
			}
			if !bytes.Equal(p, all[c.off:c.off+int64(c.n)]) {
				t.Fatal("ReadAt differs from WriteTo")
			}
		})
	}
	t.Run("past end", func(t *testing.T) {
		p := make([]byte, 100)
		n, err := im.ReadAt(p, im.Size()-50)
		if n != 50 || !errors.Is(err, io.EOF) {
			t.Fatalf("ReadAt past end: n=%d err=%v, want 50, EOF", n, err)
		}
		if _, err := im.ReadAt(p, -1); err == nil {
			t.Fatal("negative offset accepted")
		}
	})
}

func TestCloneChanges(t *testing.T) {
	tm := mustTemplate(t, Config{Size: 16 << 20, Seed: 11})
	base := readAll(t, tm.Image())
	for _, i := range []int{1, 2} {
		im := tm.Clone(i)
		data := readAll(t, im)
		var changed, differ, undeclared int64
		for b := int64(0); b < im.Size()/BlockSize; b++ {
			same := bytes.Equal(data[b*BlockSize:(b+1)*BlockSize], base[b*BlockSize:(b+1)*BlockSize])
			if im.ChangedBlock(b) {
				changed++
				if !same {
					differ++
				}
			} else if !same {
				undeclared++
			}
		}
		total := im.Size() / BlockSize
		if undeclared != 0 {
			t.Errorf("clone %d: %d blocks differ from the template outside Changed()", i, undeclared)
		}
		frac := float64(changed) / float64(total)
		if frac < 0.01 || frac > 0.02 {
			t.Errorf("clone %d changed %.4f of its blocks, want about 0.015", i, frac)
		}
		if float64(differ) < 0.8*float64(changed) {
			t.Errorf("clone %d: only %d of %d changed blocks differ from the template", i, differ, changed)
		}
		var sum int64
		for _, r := range im.Changed() {
			sum += r.Count
		}
		if sum != changed {
			t.Errorf("Changed() covers %d blocks, ChangedBlock says %d", sum, changed)
		}
	}
}

// TestCompressibility keeps the calibration honest: the used part of a
// (24 MiB) template compresses like a real Debian ext4 image (≈4.3x with zstd -3),
// not far more (docs/workload.md).
func TestCompressibility(t *testing.T) {
	tm := mustTemplate(t, Config{Size: 24 << 20, Seed: 1})
	data := readAll(t, tm.Image())
	var used int64
	for k, n := range tm.UsedBlocks() {
		if k != KindFree {
			used += n * BlockSize
		}
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	z := enc.EncodeAll(data, nil)
	ratio := float64(used) / float64(len(z))
	t.Logf("used %d bytes, zstd %d bytes: %.2fx", used, len(z), ratio)
	if ratio < 3.6 || ratio > 5.2 {
		t.Errorf("template used part compresses %.2fx, want 3.6..5.2 (calibrated ≈4.3x)", ratio)
	}
}

func TestWriteFile(t *testing.T) {
	im := mustTemplate(t, Config{Size: 2 << 20, Seed: 5}).Clone(3)
	path := filepath.Join(t.TempDir(), "clone.img")
	if err := im.WriteFile(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(readAll(t, im)) {
		t.Fatal("file differs from WriteTo output")
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"too small", Config{Size: 4096}},
		{"used fraction", Config{UsedFraction: 1.5}},
		{"change fraction", Config{ChangeFraction: -1}},
		{"negative mix", Config{Mix: Mix{Prose: -1, Binary: 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewTemplate(c.cfg); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("NewTemplate(%+v) = %v, want ErrBadConfig", c.cfg, err)
			}
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	tm, err := NewTemplate(Config{Size: 64 << 20, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(tm.Config().Size)
	for b.Loop() {
		if _, err := tm.Clone(1).WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
