package chaos

import (
	"context"
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
func (h *harness) diskFull(ctx context.Context, wait func() error) error {
	before := h.dstRefusals(ctx)
	defer func() { h.stats.DstRefusals += max(h.dstRefusals(ctx)-before, 0) }()
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

// dstRefusals is the number of files dst refused for a full buffer since it
// started (0 when its status cannot be read).
func (h *harness) dstRefusals(ctx context.Context) int64 {
	st, err := h.dstStatus(ctx)
	if err != nil {
		return 0
	}
	var n int64
	for _, v := range st.Volumes {
		n += int64(v.RefusedFull)
	}
	return n
}
