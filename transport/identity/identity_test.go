package identity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityGenerateLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "id")
	id, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CertFile, KeyFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	again, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint != id.Fingerprint {
		t.Errorf("loaded fingerprint %s, generated %s", again.Fingerprint, id.Fingerprint)
	}
	if _, err := Generate(dir); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Generate: %v, want ErrExist", err)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("Load(empty): %v, want ErrNoIdentity", err)
	}
}

func TestFingerprintRoundTrip(t *testing.T) {
	var f Fingerprint
	for i := range f {
		f[i] = byte(i * 7)
	}
	s := f.String()
	if strings.ContainsAny(s, " \t") {
		t.Fatalf("fingerprint %q contains a space", s)
	}
	hex := "00070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9"
	for _, in := range []string{s, strings.ToLower(s), strings.ReplaceAll(s, "-", ""), hex} {
		got, err := ParseFingerprint(in)
		if err != nil {
			t.Fatalf("ParseFingerprint(%q): %v", in, err)
		}
		if got != f {
			t.Errorf("ParseFingerprint(%q) = %s, want %s", in, got, f)
		}
	}
	for _, bad := range []string{"", "ABCD", strings.Repeat("1", 52), strings.Repeat("z", 64)} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", bad)
		}
	}
}

func FuzzFingerprint(f *testing.F) {
	f.Add("ABCD-EFGH")
	f.Add(strings.Repeat("A", 52))
	f.Add(strings.Repeat("0", 64))
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		back, err := ParseFingerprint(fp.String())
		if err != nil || back != fp {
			t.Fatalf("round trip of %q: %v %v", s, back, err)
		}
	})
}

// TestInterruptedKeygenRecovers: a key left without its certificate (a
// keygen killed between the two files) is not an identity: the next
// Generate makes one instead of refusing forever while Load
// reports the identity missing.
func TestInterruptedKeygenRecovers(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("half-written key"), 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := Generate(dir)
	if err != nil {
		t.Fatalf("Generate over an orphan key: %v", err)
	}
	again, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if again.Fingerprint != id.Fingerprint {
		t.Fatalf("loaded fingerprint %s, generated %s", again.Fingerprint, id.Fingerprint)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("identity folder holds %d entries, want cert and key only", len(ents))
	}
}
