package aimdst

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// expectedMethod predicts, at start, how the snapshots of the volume at
// volPath will be taken into snapDir, and why: a reflink needs the volume
// to be a regular file on the snapshot folder's file system, and that file
// system to support FICLONE (probed with two small temp files in snapDir).
// "" when it cannot tell before the first snapshot (snapDir missing).
func expectedMethod(volPath, snapDir string) (method, why string) {
	var vst unix.Stat_t
	volDev := uint64(0)
	switch err := unix.Stat(volPath, &vst); {
	case err == nil && vst.Mode&unix.S_IFMT == unix.S_IFBLK:
		return methodSparse, "the volume is a block device"
	case err == nil:
		volDev = uint64(vst.Dev)
	default:
		d, err := existingDev(filepath.Dir(volPath))
		if err != nil {
			return "", ""
		}
		volDev = d
	}
	snapDev, err := existingDev(snapDir)
	if err != nil {
		return "", ""
	}
	if volDev != snapDev {
		return methodSparse, "the volume and the snapshot folder are on different file systems"
	}
	if _, err := os.Stat(snapDir); err != nil {
		return "", ""
	}
	if err := probeClone(snapDir); err != nil {
		return methodSparse, fmt.Sprintf("the snapshot folder's file system has no reflink (FICLONE: %v)", err)
	}
	return methodReflink, "the volume and the snapshot folder share a file system with reflinks"
}

// existingDev returns the device of path, or of its nearest existing parent.
func existingDev(path string) (uint64, error) {
	p := filepath.Clean(path)
	for {
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if err == nil {
			return uint64(st.Dev), nil
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, unix.ENOENT) || parent == p {
			return 0, &fs.PathError{Op: "stat", Path: p, Err: err}
		}
		p = parent
	}
}

// probeClone tries FICLONE between two small temp files in dir and removes
// them.
func probeClone(dir string) error {
	a, err := os.CreateTemp(dir, ".reflink-probe-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(a.Name())
	defer a.Close()
	if _, err := a.Write([]byte("aimwan reflink probe\n")); err != nil {
		return err
	}
	b, err := os.CreateTemp(dir, ".reflink-probe-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(b.Name())
	defer b.Close()
	return unix.IoctlFileClone(int(b.Fd()), int(a.Fd()))
}
