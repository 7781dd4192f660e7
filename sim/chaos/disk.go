package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// dstDiskSize is the size of the tmpfs that holds dst's buffer, so that the
// dst-disk-full fault can fill it.
const dstDiskSize = "64m"

// diskReserve is what dst-disk-full leaves free.
const diskReserve = 64 << 10

// mountDisk mounts a small tmpfs at dir (root only); it reports whether it
// did.
func mountDisk(dir string) bool {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false
	}
	return exec.Command("mount", "-t", "tmpfs", "-o", "size="+dstDiskSize, "tmpfs", dir).Run() == nil
}

// unmountDisk detaches the tmpfs at dir (lazily: a daemon may still hold
// files in it).
func unmountDisk(dir string) {
	exec.Command("umount", "-l", dir).Run()
}

// diskFull fills the destination buffer's file system up to diskReserve
// bytes until wait returns, then frees it.
func (h *harness) diskFull(wait func() error) error {
	ballast := filepath.Join(h.ch.disk, "ballast")
	var st unix.Statfs_t
	if err := unix.Statfs(h.ch.disk, &st); err != nil {
		return fmt.Errorf("disk full: statfs %s: %w", h.ch.disk, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if n := free - diskReserve; n > 0 {
		f, err := os.Create(ballast)
		if err != nil {
			return fmt.Errorf("disk full: %w", err)
		}
		// tmpfs has no fallocate-free holes: write the bytes.
		buf := make([]byte, 1<<20)
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := f.Write(buf[:k]); err != nil {
				break // full already: good enough
			}
			n -= k
		}
		f.Close()
	}
	err := wait()
	if rerr := os.Remove(ballast); rerr != nil && !os.IsNotExist(rerr) {
		return fmt.Errorf("disk full: free it: %w", rerr)
	}
	return err
}
