package aimsrc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
)

// childEnv carries a Config (as JSON) to a re-executed test binary that runs
// a source node as a separate process, so tests can SIGKILL it.
const childEnv = "AIMSRC_TEST_CHILD_CONFIG"

func TestMain(m *testing.M) {
	if js := os.Getenv(childEnv); js != "" {
		os.Exit(runChild(js))
	}
	os.Exit(m.Run())
}

// childConfig is the part of Config a child node takes.
type childConfig struct {
	Buffer      string
	Volumes     []VolumeConfig
	Push        string
	FileSize    int64
	FileAge     time.Duration
	BufferLimit int64
}

// runChild runs a node until SIGTERM; it prints "READY nbd=ADDR control=ADDR"
// on stdout once it serves.
func runChild(js string) int {
	var cc childConfig
	if err := json.Unmarshal([]byte(js), &cc); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	dstID, srcID, _ := testkit.Identities() // never used: the child pushes nowhere
	n, err := NewNode(Config{Node: "child", Buffer: cc.Buffer, Volumes: cc.Volumes, Push: cc.Push,
		Identity: srcID, Pins: testkit.Pins(dstID),
		FileSize: cc.FileSize, FileAge: cc.FileAge, BufferLimit: cc.BufferLimit,
		NBD: "127.0.0.1:0", Control: "127.0.0.1:0", Metrics: "off",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Printf("READY nbd=%s control=%s\n", n.NBDAddr(), n.ControlAddr())
	if err := n.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child serve:", err)
		return 1
	}
	return 0
}

// child is a source node in its own process.
type child struct {
	cmd          *exec.Cmd
	nbd, control string
	exited       chan error
}

func startChild(t *testing.T, cc childConfig) *child {
	t.Helper()
	js, err := json.Marshal(cc)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, exited: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") {
				ready <- sc.Text()
			}
		}
		c.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.exited
	})
	select {
	case line := <-ready:
		for _, f := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "nbd":
				c.nbd = v
			case "control":
				c.control = v
			}
		}
	case err := <-c.exited:
		t.Fatalf("child node exited before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("child node did not start within 30s")
	}
	return c
}

// stop ends the child with SIGTERM (clean shutdown) and waits.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		if err != nil {
			t.Fatalf("child node: %v", err)
		}
		c.exited <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("child node did not stop within 30s")
	}
}

// sentWrite is a write the test sent and saw acknowledged.
type sentWrite struct {
	off  int64
	data []byte
}

// TestKillMidStream writes through NBD, SIGKILLs the node while writes are
// in flight, restarts it and checks that image and journals agree and that
// every acknowledged write before the last successful FLUSH is in a sealed
// journal exactly once, in order (and nothing else is).
func TestKillMidStream(t *testing.T) {
	const size = 8 << 20
	dir := t.TempDir()
	cc := childConfig{Buffer: filepath.Join(dir, "buffer"), Push: "127.0.0.1:1", FileSize: 256 << 10,
		FileAge: 50 * time.Millisecond,
		Volumes: []VolumeConfig{{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}}}
	c := startChild(t, cc)
	cl, err := dialNBD(c.nbd, "v1")
	if err != nil {
		t.Fatal(err)
	}
	var acked []sentWrite
	var unacked *sentWrite // the write whose reply the kill cut off: it may be journaled
	flushed := 0
	killAt := 155
	r := rand.New(rand.NewPCG(42, 42))
	for i := 0; i < 400; i++ {
		if i == killAt {
			// Kill while the next writes are on the wire.
			go c.cmd.Process.Kill()
		}
		w := sentWrite{off: int64(r.IntN(size/4096-16)) * 4096, data: make([]byte, (1+r.IntN(16))*4096)}
		for j := range w.data {
			w.data[j] = byte(i*7 + j/4096)
		}
		if err := cl.write(w.data, w.off); err != nil {
			unacked = &w
			break
		}
		acked = append(acked, w)
		if i%10 == 9 {
			if err := cl.flush(); err != nil {
				break
			}
			flushed = len(acked)
		}
	}
	cl.c.Close()
	<-c.exited
	c.exited <- nil
	if flushed < 50 {
		t.Fatalf("only %d writes flushed before the kill", flushed)
	}
	t.Logf("%d writes acked, %d flushed before SIGKILL", len(acked), flushed)

	// Restart: recovery seals the crashed open file and redoes its records;
	// the activity log left by the kill makes the recently written extents
	// dirty, and resync journals them again from the image.
	c2 := startChild(t, cc)
	testkit.WaitFor(t, 30*time.Second, "resync after the unclean stop", func() bool {
		st, err := (&Client{Addr: c2.control, TokenFile: ctlapi.TokenPath(cc.Buffer)}).Status(context.Background())
		return err == nil && st.Volumes[0].State == StateNormal
	})
	c2.stop(t)

	rp := newReplayer(size)
	rp.replayDir(t, filepath.Join(cc.Buffer, "v1"))
	img := testkit.ReadFile(t, filepath.Join(dir, "v1.img"))
	if !bytes.Equal(rp.img, img) {
		t.Fatalf("image and replayed journals disagree: %s", testkit.FirstDiff(img, rp.img))
	}
	inFlight := acked
	if unacked != nil {
		inFlight = append(inFlight[:len(inFlight):len(inFlight)], *unacked)
	}
	checkJournaledWrites(t, rp.records, inFlight, flushed, size)
}

// checkJournaledWrites checks that the journals hold the writes sent (the
// acknowledged ones, then the one whose reply the kill cut off) in order,
// exactly once, at least up to the last flush; then at most the write in
// flight at the kill; then only resync records (whole 64 KiB regions).
func checkJournaledWrites(t *testing.T, recs []journal.Record, acked []sentWrite, flushed int, size int64) {
	t.Helper()
	k := 0
	for k < len(recs) && k < len(acked) {
		rec, w := recs[k], acked[k]
		if rec.Kind != journal.KindWrite || rec.Offset != w.off || rec.Length != int64(len(w.data)) ||
			rec.CRC != journal.Checksum(w.data) {
			break
		}
		k++
	}
	if k < flushed {
		t.Fatalf("only the first %d of %d flushed writes are journaled in order; record %d differs", k, flushed, k)
	}
	rest := recs[k:]
	if k < len(acked) && len(rest) > 0 && rest[0].Offset == acked[k].off && rest[0].CRC == journal.Checksum(acked[k].data) {
		rest = rest[1:] // the write in flight at the kill
	}
	resynced := 0
	for _, r := range rest {
		whole := r.Offset%DefaultDirtyGranularity == 0 && (r.Length%DefaultDirtyGranularity == 0 || r.Offset+r.Length == size)
		if !whole || (r.Kind != journal.KindWrite && r.Kind != journal.KindZero) {
			t.Fatalf("record seq %d (%s %d+%d) after the acked writes is neither in flight nor a resync", r.Seq, r.Kind, r.Offset, r.Length)
		}
		resynced++
	}
	t.Logf("%d acked writes journaled in order (%d flushed), %d resync records", k, flushed, resynced)
	if resynced == 0 {
		t.Error("no resync records after the unclean stop")
	}
}

// TestResumeFromDisk: journal files left by an earlier run (push target down)
// are pushed by the next run, in order, and the destination equals the image.
func TestResumeFromDisk(t *testing.T) {
	const size = 4 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}
	cfg := testConfig(t, dir, vc)
	cfg.FileSize = 128 << 10
	n, stop := runNode(t, cfg)
	cl := mustDialNBD(t, n.NBDAddr().String(), "v1")
	for i := range 40 {
		if err := cl.write(bytes.Repeat([]byte{byte(i + 1)}, 32<<10), int64(i)*96<<10); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.flush(); err != nil {
		t.Fatal(err)
	}
	cl.close()
	stop()
	seqs, _ := journal.ListSealed(filepath.Join(cfg.Buffer, "v1"))
	if len(seqs) < 5 {
		t.Fatalf("want files waiting on disk, got %d", len(seqs))
	}
	dst := newFakeDst()
	cfg.Push = serveFakeDst(t, dst)
	n2, _ := runNode(t, cfg)
	if got := n2.Status().Volumes[0].FilesWaiting; got != int64(len(seqs)) {
		t.Errorf("status after restart: %d files waiting, want %d", got, len(seqs))
	}
	testkit.WaitFor(t, 20*time.Second, "files pushed", func() bool {
		st := n2.Status().Volumes[0]
		return st.FilesWaiting == 0 && st.SrcDataBytes == 0
	})
	dst.checkReplica(t, "v1", vc.Path, size)
}

// TestKillDuringNbdcopy: nbdcopy writes an image through the export of a
// node in its own process; the node is SIGKILLed mid-stream and restarted;
// image and journals must agree. A second nbdcopy then completes the copy and
// the image equals the source.
func TestKillDuringNbdcopy(t *testing.T) {
	bin := needBinary(t, "nbdcopy")
	const size = 24 << 20
	dir := t.TempDir()
	srcPath := filepath.Join(dir, "src.img")
	src := randomImage(t, srcPath, size, 77)
	cc := childConfig{Buffer: filepath.Join(dir, "buffer"), Push: "127.0.0.1:1", FileSize: 1 << 20,
		Volumes: []VolumeConfig{{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}}}
	c := startChild(t, cc)
	copyCmd := exec.Command(bin, "--flush", srcPath, "nbd://"+c.nbd+"/v1")
	if err := copyCmd.Start(); err != nil {
		t.Fatal(err)
	}
	jdir := filepath.Join(cc.Buffer, "v1")
	testkit.WaitFor(t, 30*time.Second, "some journal files", func() bool {
		seqs, _ := journal.ListSealed(jdir)
		return len(seqs) >= 3
	})
	c.cmd.Process.Kill()
	<-c.exited
	c.exited <- nil
	copyCmd.Wait() // fails: the server went away

	c2 := startChild(t, cc)
	c2.stop(t)
	rp := newReplayer(size)
	rp.replayDir(t, jdir)
	if img := testkit.ReadFile(t, cc.Volumes[0].Path); !bytes.Equal(rp.img, img) {
		describeDiff(t, rp, img, src, jdir)
		t.Fatalf("after SIGKILL and restart, image and replayed journals disagree: %s", testkit.FirstDiff(img, rp.img))
	}
	if bytes.Equal(rp.img, src) {
		t.Log("the copy had finished before the kill")
	}

	c3 := startChild(t, cc)
	if out, err := exec.Command(bin, "--flush", srcPath, "nbd://"+c3.nbd+"/v1").CombinedOutput(); err != nil {
		t.Fatalf("nbdcopy after restart: %v\n%s", err, out)
	}
	c3.stop(t)
	rp = newReplayer(size)
	rp.replayDir(t, jdir)
	img := testkit.ReadFile(t, cc.Volumes[0].Path)
	if !bytes.Equal(img, src) || !bytes.Equal(rp.img, src) {
		t.Fatalf("after the second copy: image vs source %s, journals vs source %s", testkit.FirstDiff(src, img), testkit.FirstDiff(src, rp.img))
	}
}

// describeDiff logs, for the first differing 64 KiB block, which records
// touch it and where image and replay agree with the source, and the
// journal folder's files.
func describeDiff(t *testing.T, rp *replayer, img, src []byte, jdir string) {
	for i := range img {
		if img[i] == rp.img[i] {
			continue
		}
		blk := int64(i) &^ (64<<10 - 1)
		t.Logf("differ at %d: image %x replay %x source %x", i, img[i], rp.img[i], src[i])
		t.Logf("image==source in block: %v, replay==source: %v, replay zero: %v", bytes.Equal(img[blk:blk+64<<10], src[blk:blk+64<<10]),
			bytes.Equal(rp.img[blk:blk+64<<10], src[blk:blk+64<<10]), isZero(rp.img[blk:blk+64<<10]))
		for _, r := range rp.records {
			if r.Offset < blk+64<<10 && r.Offset+r.Length > blk {
				t.Logf("record seq %d %s %d+%d", r.Seq, r.Kind, r.Offset, r.Length)
			}
		}
		t.Logf("last record seq %d", rp.nextSeq-1)
		ents, _ := os.ReadDir(jdir)
		for _, e := range ents {
			fi, _ := e.Info()
			t.Logf("dir: %s %d", e.Name(), fi.Size())
		}
		return
	}
}
