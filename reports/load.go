package reports

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aimwan/aimwan/internal/metrics"
)

// ErrBadRecording is wrapped by every error about a malformed recording.
var ErrBadRecording = errors.New("bad recording")

// maxLine bounds one JSONL line (a daemon with thousands of series).
const maxLine = 16 << 20

// Recording is the samples of one daemon, in file order.
type Recording struct {
	// Daemon is the file name without .jsonl.
	Daemon  string
	Samples []metrics.Sample
}

// ReadRecording reads <daemon>.jsonl.
func ReadRecording(path string) (*Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read recording: %w", err)
	}
	defer f.Close()
	daemon := strings.TrimSuffix(filepath.Base(path), ".jsonl")
	return ParseRecording(daemon, f)
}

// ParseRecording reads JSONL samples from r. Blank lines are skipped. A last
// line without its newline that does not parse is a write torn by a crash and
// is dropped; any other bad line is an error naming the daemon and line.
func ParseRecording(daemon string, r io.Reader) (*Recording, error) {
	rec := &Recording{Daemon: daemon}
	keys := map[string]string{} // one copy of each key for the whole recording
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("recording %s line %d: %w", daemon, n, err)
		}
		complete := bytes.HasSuffix(line, []byte("\n"))
		if t := bytes.TrimSpace(line); len(t) > 0 {
			var s metrics.Sample
			if perr := json.Unmarshal(t, &s); perr != nil {
				if !complete && errors.Is(err, io.EOF) {
					break // torn last line
				}
				return nil, fmt.Errorf("%w: %s line %d: %w", ErrBadRecording, daemon, n, perr)
			}
			rec.Samples = append(rec.Samples, internKeys(s, keys))
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	return rec, nil
}

// internKeys rebuilds s.Values with keys shared across samples, so a long
// recording holds each series name once.
func internKeys(s metrics.Sample, keys map[string]string) metrics.Sample {
	vals := make(map[string]float64, len(s.Values))
	for k, v := range s.Values {
		ik, ok := keys[k]
		if !ok {
			keys[k], ik = k, k
		}
		vals[ik] = v
	}
	s.Values = vals
	return s
}

// readLine returns the next line including its newline, failing on lines
// longer than maxLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		part, err := br.ReadSlice('\n')
		buf = append(buf, part...)
		if len(buf) > maxLine {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrBadRecording, maxLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return buf, err
	}
}

// LoadDir reads every *.jsonl recording in dir, sorted by daemon name.
func LoadDir(dir string) ([]*Recording, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("load recordings from %s: %w", dir, err)
	}
	sort.Strings(paths)
	recs := make([]*Recording, 0, len(paths))
	for _, p := range paths {
		rec, err := ReadRecording(p)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}
