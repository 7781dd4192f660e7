package durable

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// recordSyncs replaces the fsync calls for one test and returns what was
// synced, in order: files by name, folders by path with a trailing "/".
func recordSyncs(t *testing.T) func() []string {
	t.Helper()
	var mu sync.Mutex
	var got []string
	t.Cleanup(SetSyncHook(func(f *os.File, folder bool) error {
		name := f.Name()
		if folder {
			name += "/"
		}
		mu.Lock()
		got = append(got, name)
		mu.Unlock()
		return f.Sync()
	}))
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestWriteFileReplacesAndSyncsFolder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	synced := recordSyncs(t)
	if err := WriteFile(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "new" {
		t.Fatalf("content %q, %v; want new", b, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	got := synced()
	if len(got) != 2 || got[1] != dir+"/" {
		t.Fatalf("synced %q; want the temp file then the folder %s/", got, dir)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("folder holds %d entries, want only state.json (no temp file left)", len(ents))
	}
}

func TestWriteFileFailureLeavesOldContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk gone")
	t.Cleanup(SetSyncHook(func(f *os.File, folder bool) error {
		if folder {
			return f.Sync()
		}
		return boom
	}))
	err := WriteFile(path, []byte("new"), 0o600)
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want the fsync failure wrapped", err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "old" {
		t.Errorf("content %q after a failed write, want old", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("folder holds %d entries, want the temp file removed", len(ents))
	}
}

func TestWriteFileMissingFolder(t *testing.T) {
	err := WriteFile(filepath.Join(t.TempDir(), "no", "such"), nil, 0o600)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v, want not-exist", err)
	}
}

func TestMkdirAllSyncsEachCreatedParent(t *testing.T) {
	base := t.TempDir()
	synced := recordSyncs(t)
	dir := filepath.Join(base, "a", "b", "c")
	if err := MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	want := []string{base + "/", filepath.Join(base, "a") + "/", filepath.Join(base, "a", "b") + "/"}
	if got := synced(); !slices.Equal(got, want) {
		t.Fatalf("synced %q, want %q", got, want)
	}
	for _, d := range []string{"a", "a/b", "a/b/c"} {
		st, err := os.Stat(filepath.Join(base, d))
		if err != nil || !st.IsDir() {
			t.Fatalf("%s: %v", d, err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %v, want no group/other bits", d, st.Mode().Perm())
		}
	}
	// Existing folders are left alone and nothing is synced.
	before := len(synced())
	if err := MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if n := len(synced()); n != before {
		t.Errorf("MkdirAll on an existing folder synced %d folders", n-before)
	}
}

func TestMkdirAllNotAFolder(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(file, "x"), 0o700); err == nil {
		t.Fatal("MkdirAll under a regular file succeeded")
	}
	if err := MkdirAll(file, 0o700); err == nil {
		t.Fatal("MkdirAll on a regular file succeeded")
	}
}

func TestSyncDirMissing(t *testing.T) {
	if err := SyncDir(filepath.Join(t.TempDir(), "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v, want not-exist", err)
	}
}

// TestSyncHookSeesEveryStepAndRestores: the hook sees the file syncs and
// folder syncs of every call, a failure it returns reaches the caller
// wrapped, and restore brings the real fsync back.
func TestSyncHookSeesEveryStepAndRestores(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boom := errors.New("injected")
	var folders, files int
	restore := SetSyncHook(func(g *os.File, folder bool) error {
		if folder {
			folders++
			return boom
		}
		files++
		return nil
	})
	if err := Sync(f); err != nil || files != 1 {
		t.Fatalf("Sync: %v after %d file syncs, want nil after 1", err, files)
	}
	if err := SyncDir(dir); !errors.Is(err, boom) || folders != 1 {
		t.Fatalf("SyncDir: %v after %d folder syncs, want the injected failure after 1", err, folders)
	}
	restore()
	if err := SyncDir(dir); err != nil || folders != 1 {
		t.Fatalf("after restore: %v, hook called %d times, want the real fsync only", err, folders)
	}
}
