package journal

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashEnv = "AIMWAN_JOURNAL_CRASH_DIR"

// crashOp is the deterministic record with sequence seq in the crash test.
func crashOp(seq uint64) op {
	switch {
	case seq%50 == 0:
		return markerOp(Record{Kind: KindSnapshot, Label: "s" + strconv.FormatUint(seq, 10)})
	case seq%7 == 0:
		return zeroOp(int64(seq%512)*4096, 8192, seq%2 == 0)
	}
	return writeOp(int64(seq%1000)*4096, 1+int64(seq*7919%20000))
}

// TestCrashChild is the child process of TestCrashKill: it appends records
// until it is killed, printing the last sequence after each Sync.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of TestCrashKill")
	}
	w, _, err := OpenWriter(WriterConfig{Dir: dir, Volume: "vol1", VolumeSize: testVolSize, MaxFileSize: 64 << 10})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(time.Minute) // never outlive a lost parent
	for seq := uint64(1); seq < 1_000_000 && time.Now().Before(deadline); seq++ {
		r := apply(t, w, crashOp(seq))
		if r.Seq != seq {
			fmt.Println("error seq", r.Seq, "want", seq)
			os.Exit(1)
		}
		if seq%3 == 0 {
			if err := w.Sync(); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Fprintln(out, "synced", seq)
			out.Flush()
		}
	}
	os.Exit(2)
}

// TestCrashKill runs a writer in a child process, kills it with SIGKILL
// mid-stream, recovers, and checks that every synced record is in a sealed
// file exactly once, in order, with its data, and that sequences continue.
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := shmTempDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var synced uint64
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && synced < 600 {
		line := sc.Text()
		if s, ok := strings.CutPrefix(line, "synced "); ok {
			synced, _ = strconv.ParseUint(s, 10, 64)
			continue
		}
		t.Fatalf("child: %s", line)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if synced < 600 {
		t.Fatalf("child stopped after seq %d", synced)
	}

	w, recs, err := OpenWriter(WriterConfig{Dir: dir, Volume: "vol1", VolumeSize: testVolSize, MaxFileSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	next := w.NextSeq()
	apply(t, w, crashOp(next))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, datas, _ := readAll(t, dir, "vol1")
	last := uint64(len(got))
	if last < synced+1 || next != last {
		t.Fatalf("%d records after recovery (next seq %d), %d were synced", last, next, synced)
	}
	want := make([]Record, last)
	for i := range want {
		o := crashOp(uint64(i + 1))
		want[i] = Record{Kind: o.kind, Seq: uint64(i + 1), Offset: o.off, Length: o.length, Label: o.marker.Label}
	}
	checkRecords(t, got, datas, want)
	t.Logf("killed after sync of seq %d; %d recovered from the open file, %d records in total", synced, len(recs), last-1)
}
