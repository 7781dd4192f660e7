package aimdst

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aimwan/aimwan/internal/testkit"
)

// TestZeroPunchesHole checks that Zero leaves a hole (fewer blocks) that
// reads as zeros and keeps the size.
func TestZeroPunchesHole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.img")
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xab}, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	vf, err := openOSVolume(path, 4<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := vf.Zero(1<<20, 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := vf.Zero(100, 10); err != nil { // unaligned: zeros, no hole
		t.Fatal(err)
	}
	if err := vf.Close(); err != nil {
		t.Fatal(err)
	}
	got := testkit.ReadFile(t, path)
	want := bytes.Repeat([]byte{0xab}, 4<<20)
	clear(want[1<<20 : 3<<20])
	clear(want[100:110])
	if !bytes.Equal(got, want) {
		t.Fatalf("content after Zero: %s", testkit.FirstDiff(want, got))
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 3<<20 {
		t.Errorf("%d bytes allocated after punching 2 MiB of 4 MiB: no hole", st.Blocks*512)
	}
}

// switchableOpener opens real volumes, or fails with err while it is set.
type switchableOpener struct {
	mu       sync.Mutex
	openErr  error
	writeErr error
}

func (s *switchableOpener) set(openErr, writeErr error) {
	s.mu.Lock()
	s.openErr, s.writeErr = openErr, writeErr
	s.mu.Unlock()
}

func (s *switchableOpener) open(path string, size int64, create bool) (volumeFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.openErr != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: s.openErr}
	}
	vf, err := openOSVolume(path, size, create)
	if err != nil || s.writeErr == nil {
		return vf, err
	}
	return failingWrites{vf, s.writeErr}, nil
}

type failingWrites struct {
	volumeFile
	err error
}

func (f failingWrites) WriteAt(p []byte, off int64) (int, error) { return 0, f.err }

// TestVolumeOffline keeps receiving while the volume is missing, read-only or
// full, reports it, and destages once it is back.
func TestVolumeOffline(t *testing.T) {
	cases := []struct {
		name, reason      string
		openErr, writeErr error
	}{
		{"missing", "missing", syscall.ENOENT, nil},
		{"read-only", "read-only", syscall.EROFS, nil},
		{"disk full", "disk full", nil, syscall.ENOSPC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := smallJournal(t, 6, nil)
			sw := &switchableOpener{}
			sw.set(tc.openErr, tc.writeErr)
			tn := newTestNode(t, func(c *Config) { c.openVolume = sw.open })
			tn.serve(t)
			for _, p := range g.files {
				if err := deliver(t, tn.n, "vol", p, 1<<30); err != nil {
					t.Fatalf("receive while offline: %v", err)
				}
			}
			testkit.WaitFor(t, 5*time.Second, "offline state", func() bool {
				v := tn.n.Status().Volumes[0]
				return v.Offline && strings.HasSuffix(v.State, ": "+tc.reason)
			})
			if v := tn.n.Status().Volumes[0]; v.FilesWaiting != len(g.files) || v.DestagedFile != 0 {
				t.Fatalf("offline volume: %+v", v)
			}
			sw.set(nil, nil)
			testkit.WaitFor(t, 5*time.Second, "destage after the volume is back", destaged(tn.n, len(g.files)))
			if got := testkit.ReadFile(t, tn.volPath); !bytes.Equal(got, g.final) {
				t.Fatalf("image: %s", testkit.FirstDiff(g.final, got))
			}
			testkit.WaitFor(t, 5*time.Second, "idle state after recovery", func() bool {
				v := tn.n.Status().Volumes[0]
				return v.State == stateIdle && !v.Offline
			})
		})
	}
}

// TestMissingVolumeCreate creates a missing volume when configured to.
func TestMissingVolumeCreate(t *testing.T) {
	g := smallJournal(t, 7, nil)
	tn := newTestNode(t, func(c *Config) { c.Volumes[0].Create = true })
	os.Remove(tn.volPath)
	deliverAll(t, tn.n, "vol", g.files)
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadFile(t, tn.volPath); !bytes.Equal(got, g.final) {
		t.Fatalf("image: %s", testkit.FirstDiff(g.final, got))
	}
}
