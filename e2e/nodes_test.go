package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/testkit"
)

// DstNode is a running `aimwan dst`.
type DstNode struct {
	*Proc
	Listen, Control string // push and status addresses
	Metrics         string // Prometheus address
	Buffer, Snaps   string // destination buffer and snapshot folders
	t               *testing.T
}

// StartDst starts a destination node with free ports and temp folders, with
// the identity Keys.Dst, trusting Keys.Src and Keys.ProxyDst (it can be
// pushed to directly or through a proxy pair). volumes are
// "NAME=PATH[,create]" values; extra flags are appended.
func StartDst(t *testing.T, volumes []string, extra ...string) *DstNode {
	t.Helper()
	return StartDstWith(t, nil, volumes, extra...)
}

// StartDstWith is StartDst with the process started by start (given the
// arguments after the binary); nil starts the aimwan binary.
func StartDstWith(t *testing.T, start func(args []string) *Proc, volumes []string, extra ...string) *DstNode {
	t.Helper()
	dir := t.TempDir()
	d := &DstNode{Listen: testkit.FreeAddr(t), Control: testkit.FreeAddr(t), Metrics: testkit.FreeAddr(t),
		Buffer: filepath.Join(dir, "buffer"), Snaps: filepath.Join(dir, "snapshots"), t: t}
	args := []string{"dst", "--listen", d.Listen, "--control", d.Control, "--metrics", d.Metrics,
		"--buffer", d.Buffer, "--snapshots", d.Snaps,
		"--key", Keys.Dst.Dir, "--peer-fp", Keys.Src.FP, "--peer-fp", Keys.ProxyDst.FP}
	for _, v := range volumes {
		args = append(args, "--volume", v)
	}
	if start == nil {
		start = func(args []string) *Proc { return StartProc(t, "dst", args...) }
	}
	d.Proc = start(append(args, extra...))
	WaitPort(t, d.Listen, d.Proc)
	WaitPort(t, d.Control, d.Proc)
	WaitPort(t, d.Metrics, d.Proc)
	return d
}

// Restart restarts the node and waits for its ports.
func (d *DstNode) Restart() {
	old, _ := os.ReadFile(ctlapi.TokenPath(d.Buffer))
	d.Proc.Ready = []string{d.Listen, d.Control} // the restart waits for them
	d.Proc.Restart()
	// The control port listens before the node writes its new token.
	testkit.WaitFor(d.t, 20*time.Second, "dst's new control token", func() bool {
		b, err := os.ReadFile(ctlapi.TokenPath(d.Buffer))
		return err == nil && len(b) > 0 && string(b) != string(old)
	})
}

// Status fetches the node's status.
func (d *DstNode) Status(t *testing.T) aimdst.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := aimdst.FetchStatus(ctx, d.Control, ctlapi.TokenPath(d.Buffer))
	if err != nil {
		t.Fatalf("dst status: %v", err)
	}
	return st
}

// Volume returns the status of one volume.
func (d *DstNode) Volume(t *testing.T, name string) aimdst.VolumeStatus {
	t.Helper()
	for _, v := range d.Status(t).Volumes {
		if v.Volume == name {
			return v
		}
	}
	t.Fatalf("dst status has no volume %s", name)
	return aimdst.VolumeStatus{}
}

// Snapshot is the path of a snapshot taken at a marker.
func (d *DstNode) Snapshot(volume, label string) string {
	return aimdst.SnapshotPath(d.Snaps, volume, label)
}

// WaitSnapshot waits until the snapshot file exists (it appears atomically).
func (d *DstNode) WaitSnapshot(t *testing.T, volume, label string, timeout time.Duration) string {
	t.Helper()
	p := d.Snapshot(volume, label)
	Eventually(t, timeout, "snapshot "+volume+"/"+label, func() (bool, error) {
		return FileExists(p), nil
	})
	return p
}

// SrcNode is a running `aimwan src`.
type SrcNode struct {
	*Proc
	NBD, Control string
	Buffer       string
}

// StartSrc starts a source node pushing to push, with free ports, with the
// identity Keys.Src, trusting Keys.Dst and Keys.ProxySrc; volumes are
// "NAME=PATH[,size=N]" values; extra flags are appended (a later --key
// wins).
func StartSrc(t *testing.T, push string, volumes []string, extra ...string) *SrcNode {
	t.Helper()
	s := &SrcNode{NBD: testkit.FreeAddr(t), Control: testkit.FreeAddr(t), Buffer: filepath.Join(t.TempDir(), "src-buffer")}
	args := []string{"src", "--nbd", s.NBD, "--push", push, "--control", s.Control, "--metrics", "off",
		"--buffer", s.Buffer, "--file-age", "200ms",
		"--key", Keys.Src.Dir, "--peer-fp", Keys.Dst.FP, "--peer-fp", Keys.ProxySrc.FP}
	for _, v := range volumes {
		args = append(args, "--volume", v)
	}
	s.Proc = StartProc(t, "src", append(args, extra...)...)
	WaitPort(t, s.NBD, s.Proc)
	WaitPort(t, s.Control, s.Proc)
	return s
}

// Status fetches the node's status through its control API.
func (s *SrcNode) Status(t *testing.T) aimsrc.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := (&aimsrc.Client{Addr: s.Control, TokenFile: ctlapi.TokenPath(s.Buffer)}).Status(ctx)
	if err != nil {
		t.Fatalf("src status: %v", err)
	}
	return st
}

// URI is the NBD URI of a volume's export.
func (s *SrcNode) URI(volume string) string { return "nbd://" + s.NBD + "/" + volume }

// WriteImage copies a raw image into a volume through the NBD export with
// qemu-img (the target is not created, only written).
func (s *SrcNode) WriteImage(t *testing.T, volume, image string) {
	t.Helper()
	Run(t, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", image, s.URI(volume))
}

// Marker places a marker with `aimwan src marker`; args are e.g.
// "--volume", "v", "--snapshot", "s1".
func (s *SrcNode) Marker(t *testing.T, args ...string) {
	t.Helper()
	MustAimwan(t, append([]string{"src", "marker", "--control", s.Control, "--buffer", s.Buffer}, args...)...)
}
