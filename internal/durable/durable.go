// Package durable is the one home of crash-safe file-system steps: a file
// replaced atomically, a folder whose entries survive a power loss, and
// folders created together with the entries that name them.
//
// Glossary:
//   - durable: on stable storage; a power loss after the call returns keeps it.
//   - folder fsync: an fsync of the folder itself, which makes its entries
//     (creates, renames, removes) durable. A file fsynced but never its folder
//     entry can vanish whole after a power loss.
//   - atomic replace: a reader or a crash sees the old content or the new,
//     never a mix: write a temporary file in the same folder, fsync it, rename
//     it over the target, fsync the folder.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
)

// SyncHook replaces the fsync calls of this package (see SetSyncHook): it
// gets the open file or folder (folder true) and returns what its fsync
// would; to sync for real it calls f.Sync itself.
type SyncHook func(f *os.File, folder bool) error

var hook atomic.Pointer[SyncHook]

// SetSyncHook makes every fsync done by this package (Sync, SyncDir,
// WriteFile, MkdirAll) call fn instead, until restore is called. It is the
// one seam for tests: to see which files and folders are synced, to inject
// a failing fsync, or, for fault-model tests that simulate power loss
// themselves, to skip the disk for speed. A daemon never calls it.
func SetSyncHook(fn SyncHook) (restore func()) {
	old := hook.Swap(&fn)
	return func() { hook.Store(old) }
}

// fsync syncs f through the hook when one is set.
func fsync(f *os.File, folder bool) error {
	if h := hook.Load(); h != nil && *h != nil {
		return (*h)(f, folder)
	}
	return f.Sync()
}

// WriteFile replaces path with data atomically and durably: a temporary file
// in the same folder, written, fsynced and given perm, renamed over path, and
// the folder fsynced. A crash at any point leaves the old content or the new.
// The temporary file is removed when a step fails.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = fsync(tmp, false)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// Sync fsyncs an open file, wrapping a failure with the file's name.
func Sync(f *os.File) error {
	if err := fsync(f, false); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	return nil
}

// SyncDir fsyncs the folder dir, so that the entries created, renamed or
// removed in it survive a power loss.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync folder %s: %w", dir, err)
	}
	err = fsync(d, true)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync folder %s: %w", dir, err)
	}
	return nil
}

// MkdirAll creates dir and any missing parents with mode perm (before the
// umask), like os.MkdirAll, and fsyncs the parent of every folder it creates,
// shallowest first, so no created folder can vanish with its entry after a
// power loss. A dir that exists already is left as it is; a path element that
// exists and is not a folder is an error.
func MkdirAll(dir string, perm fs.FileMode) error {
	dir = filepath.Clean(dir)
	var missing []string // deepest first
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("create folder %s: %s is not a folder", dir, d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("create folder %s: %w", dir, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create folder %s: %w", dir, err)
		}
		if err := SyncDir(filepath.Dir(missing[i])); err != nil {
			return fmt.Errorf("create folder %s: %w", dir, err)
		}
	}
	return nil
}
