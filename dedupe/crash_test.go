package dedupe

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The crash test runs a child process (this test binary) that fills a
// store in a folder and reports each Save on stdout; the parent kills it
// with SIGKILL at a random point, reopens the store and checks that every
// chunk saved before the kill is there with its links, and that nothing
// returned is wrong.

const (
	crashEnvDir   = "AIMWAN_STORE_CRASH_DIR"
	crashEnvRound = "AIMWAN_STORE_CRASH_ROUND"
	crashChunks   = 3000 // per round, 4 KiB each: 12 MB
	crashRounds   = 5
)

// crashChunk is chunk i of a round: 4 KiB, distinct across rounds.
func crashChunk(round, i int) []byte {
	b := make([]byte, 4096)
	r := rand.New(rand.NewPCG(uint64(round), uint64(i)))
	for k := 0; k < len(b); k += 8 {
		binary.LittleEndian.PutUint64(b[k:], r.Uint64())
	}
	return b
}

func crashConfig(dir string) StoreConfig {
	return StoreConfig{Dir: dir, MaxBytes: 256 << 20, SaveInterval: time.Hour}
}

// TestStoreCrashChild is the child's body; it runs only when the parent
// test starts it.
func TestStoreCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("the child of TestStoreSurvivesSIGKILL")
	}
	round, _ := strconv.Atoi(os.Getenv(crashEnvRound))
	st, err := OpenStore(crashConfig(dir))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	st.containerBytes = 256 << 10 // many containers: kills land in seals too
	var prev Fingerprint
	for i := 0; i < crashChunks; i++ {
		c := crashChunk(round, i)
		fp := Sum(c)
		st.Put(fp, c)
		if i > 0 {
			st.Link(prev, fp)
		}
		prev = fp
		if i%97 == 96 {
			if err := st.Save(); err != nil {
				fmt.Println("save:", err)
				os.Exit(3)
			}
			fmt.Printf("saved %d\n", i+1)
		}
	}
	fmt.Println("done")
	time.Sleep(time.Minute) // the parent kills it before
	os.Exit(4)
}

func TestStoreSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	saved := make([]int, crashRounds) // chunks saved per round
	for round := range crashRounds {
		saved[round] = crashRun(t, dir, round, 1+rng.IntN(25), time.Duration(rng.IntN(3000))*time.Microsecond)
		st, err := OpenStore(crashConfig(dir))
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		for r := 0; r <= round; r++ {
			checkCrashRound(t, st, r, saved[r])
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// crashRun starts the child for round, kills it after `after` Save
// reports plus a delay, and returns the chunks it reported saved.
func crashRun(t *testing.T, dir string, round, after int, delay time.Duration) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvRound+"="+strconv.Itoa(round))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() }) // bound
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	saved, reports := 0, 0
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "saved "); ok {
			saved, _ = strconv.Atoi(n)
			if reports++; reports == after {
				time.Sleep(delay)
				break
			}
			continue
		}
		if line == "done" {
			break
		}
		if strings.HasPrefix(line, "open:") || strings.HasPrefix(line, "save:") {
			t.Fatalf("round %d child: %s", round, line)
		}
	}
	_ = cmd.Process.Kill() // SIGKILL
	go func() { _, _ = bufio.NewReader(out).WriteTo(discard{}) }()
	_ = cmd.Wait()
	t.Logf("round %d: killed after %d saved chunks (+%v)", round, saved, delay)
	return saved
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// checkCrashRound: the first saved chunks of round are there, linked; any
// later chunk the store returns is right (Get re-hashes anyway).
func checkCrashRound(t *testing.T, st *Store, round, saved int) {
	t.Helper()
	var prev Fingerprint
	for i := 0; i < crashChunks; i++ {
		c := crashChunk(round, i)
		fp := Sum(c)
		got, ok := st.Get(nil, fp)
		if i < saved {
			if !ok {
				t.Fatalf("round %d: chunk %d of %d saved before the kill is lost", round, i, saved)
			}
			if i > 0 {
				if s, ok := st.Successor(prev); !ok || s != fp {
					t.Fatalf("round %d: link %d -> %d lost", round, i-1, i)
				}
			}
		}
		if ok && !bytes.Equal(got, c) {
			t.Fatalf("round %d: chunk %d returned wrong bytes", round, i)
		}
		prev = fp
	}
}
