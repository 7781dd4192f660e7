package testkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CanReflink reports whether files in dir can share extents (the FICLONE
// ioctl works there), and the error of the probe when not.
func CanReflink(dir string) (bool, error) {
	a, err := os.CreateTemp(dir, ".reflink-probe-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(a.Name())
	defer a.Close()
	if _, err := a.Write([]byte("probe")); err != nil {
		return false, err
	}
	b, err := os.CreateTemp(dir, ".reflink-probe-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(b.Name())
	defer b.Close()
	if err := unix.IoctlFileClone(int(b.Fd()), int(a.Fd())); err != nil {
		return false, err
	}
	return true, nil
}

// ReflinkDir returns an empty folder on a file system with reflinks: the
// test's temp folder when its file system has them (btrfs, XFS), else a
// fresh XFS (-m reflink=1) of size bytes in a sparse image file,
// loop-mounted for the test and unmounted when it ends. Without root, or
// where the machine refuses a loop mount (a container), the test is
// skipped saying why; without mkfs.xfs it is skipped, or fails in CI
// (NeedTool).
func ReflinkDir(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	ok, probeErr := CanReflink(dir)
	if ok {
		return dir
	}
	why := "the temp folder's file system has no reflink (FICLONE: " + probeErr.Error() + ")"
	if os.Geteuid() != 0 {
		t.Skip(why + ", and loop-mounting an XFS image needs root")
	}
	mkfs := NeedTool(t, "mkfs.xfs", "xfsprogs")
	img := filepath.Join(dir, "xfs.img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, mkfs, "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, out)
	}
	if out, err := exec.CommandContext(ctx, "mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("%s, and the machine refused a loop mount of an XFS image: %v: %s", why, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { unmount(t, mnt) })
	if ok, err := CanReflink(mnt); !ok {
		t.Fatalf("the loop-mounted XFS has no reflink: %v", err)
	}
	return mnt
}

// unmount unmounts mnt (which releases its loop device), retrying a busy
// mount for a few seconds, then detaching it lazily.
func unmount(t testing.TB, mnt string) {
	var err error
	for range 50 {
		if err = unix.Unmount(mnt, 0); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("unmount %s: %v; detaching it lazily", mnt, err)
	if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
		t.Errorf("unmount %s lazily: %v", mnt, err)
	}
}
