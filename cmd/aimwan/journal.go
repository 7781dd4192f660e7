package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aimwan/aimwan/journal"
)

func init() {
	register(command{Name: "journal", Summary: "inspect journal files (journal inspect FILE)", Run: runJournal})
}

func runJournal(ctx context.Context, args []string) error {
	return journalMain(ctx, args, os.Stdout)
}

// journalMain dispatches "aimwan journal SUBCOMMAND".
func journalMain(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("journal: missing subcommand (usage: aimwan journal inspect [--json] [--volume NAME] FILE)")
	}
	switch args[0] {
	case "inspect":
		return journalInspect(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, "Usage: aimwan journal inspect [--json] [--volume NAME] FILE\n\nValidates one journal file and lists its header and records.")
		return nil
	}
	return usagef("journal: unknown subcommand %q (known: inspect)", args[0])
}

func journalInspect(args []string, stdout io.Writer) error {
	fs := newFlagSet("journal inspect", "[--json] [--volume NAME] FILE")
	asJSON := fs.Bool("json", false, "print the file as one JSON document")
	volume := fs.String("volume", "", "also require that the file belongs to this volume")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("journal inspect: want exactly one FILE, got %d arguments", fs.NArg())
	}
	path := fs.Arg(0)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("journal inspect: %w", err)
	}
	var f *journal.File
	if *volume != "" {
		f, err = journal.ParseExpect(path, b, *volume)
	} else {
		f, err = journal.Parse(path, b)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(inspectDoc(path, f))
	}
	printInspect(stdout, path, f)
	return nil
}

// inspectJSON is the --json document of one journal file.
type inspectJSON struct {
	File       string       `json:"file"`
	Valid      bool         `json:"valid"`
	Size       int64        `json:"size"`
	SHA256     string       `json:"sha256"`
	Volume     string       `json:"volume"`
	VolumeSize int64        `json:"volume_size"`
	FileSeq    uint64       `json:"file_seq"`
	Version    uint16       `json:"version"`
	Stream     string       `json:"stream,omitempty"`       // journal stream id (hex); none in version 1
	Start      string       `json:"stream_start,omitempty"` // "full initialize" / "delta initialize" when the file starts its stream
	Created    string       `json:"created"`
	FirstSeq   uint64       `json:"first_seq"`
	LastSeq    uint64       `json:"last_seq"`
	PayloadOff int64        `json:"payload_offset"`
	PayloadLen int64        `json:"payload_length"`
	IndexOff   int64        `json:"index_offset"`
	IndexLen   int64        `json:"index_length"`
	Records    []recordJSON `json:"records"`
}

type kvJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type recordJSON struct {
	Seq      uint64   `json:"seq"`
	Kind     string   `json:"kind"`
	Time     string   `json:"time"`
	Offset   *int64   `json:"offset,omitempty"`
	Length   *int64   `json:"length,omitempty"`
	DataOff  *int64   `json:"data_offset,omitempty"`
	CRC      string   `json:"crc32c,omitempty"`
	Label    string   `json:"label,omitempty"`
	Args     []kvJSON `json:"args,omitempty"`
	Group    string   `json:"group,omitempty"`
	GroupSeq uint64   `json:"group_seq,omitempty"`
	Members  []string `json:"members,omitempty"`
}

func inspectDoc(path string, f *journal.File) inspectJSON {
	payloadLen := int64(len(f.Payload()))
	indexOff := f.Header.Size() + payloadLen
	d := inspectJSON{
		File: path, Valid: true, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256[:]),
		Volume: f.Header.Volume, VolumeSize: f.Header.VolumeSize, FileSeq: f.Header.FileSeq,
		Version: f.Header.Version, Stream: f.Header.Stream.String(), Start: f.Header.Start.String(),
		Created: f.Header.Created.Format(time.RFC3339Nano), FirstSeq: f.FirstSeq(), LastSeq: f.LastSeq(),
		PayloadOff: f.Header.Size(), PayloadLen: payloadLen,
		IndexOff: indexOff, IndexLen: f.Size - journal.FooterSize - indexOff,
	}
	for _, r := range f.Records {
		rj := recordJSON{Seq: r.Seq, Kind: r.Kind.String(), Time: r.Time.Format(time.RFC3339Nano),
			Label: r.Label, Group: r.Group, GroupSeq: r.GroupSeq, Members: r.Members}
		for _, a := range r.Args {
			rj.Args = append(rj.Args, kvJSON{Key: a.Key, Value: a.Value})
		}
		if r.Kind.HasRange() {
			rj.Offset, rj.Length = &r.Offset, &r.Length
		}
		if r.Kind == journal.KindWrite {
			rj.DataOff, rj.CRC = &r.DataOff, fmt.Sprintf("%08x", r.CRC)
		}
		d.Records = append(d.Records, rj)
	}
	return d
}

func printInspect(w io.Writer, path string, f *journal.File) {
	d := inspectDoc(path, f)
	var writes, zeros, trims, markers int
	for _, r := range f.Records {
		switch r.Kind {
		case journal.KindWrite:
			writes++
		case journal.KindZero:
			zeros++
		case journal.KindTrim:
			trims++
		default:
			markers++
		}
	}
	fmt.Fprintf(w, "%s: valid journal file, %d bytes, sha256 %s\n", path, d.Size, d.SHA256)
	fmt.Fprintf(w, "volume %s (%d bytes), file seq %d, created %s\n", d.Volume, d.VolumeSize, d.FileSeq, d.Created)
	switch {
	case d.Stream == "":
		fmt.Fprintf(w, "format version %d, no stream id\n", d.Version)
	case d.Start != "":
		fmt.Fprintf(w, "format version %d, stream %s (starts here: %s)\n", d.Version, d.Stream, d.Start)
	default:
		fmt.Fprintf(w, "format version %d, stream %s\n", d.Version, d.Stream)
	}
	fmt.Fprintf(w, "records %d..%d: %d (%d writes, %d zeros, %d trims, %d markers)\n",
		d.FirstSeq, d.LastSeq, len(f.Records), writes, zeros, trims, markers)
	fmt.Fprintf(w, "payload %d+%d, index %d+%d, footer %d+%d\n",
		d.PayloadOff, d.PayloadLen, d.IndexOff, d.IndexLen, d.Size-journal.FooterSize, journal.FooterSize)
	for _, r := range f.Records {
		fmt.Fprintf(w, "%d %s %-8s %s\n", r.Seq, r.Time.Format(time.RFC3339Nano), r.Kind, recordDetails(r))
	}
}

// recordDetails is the kind-specific part of a record's line.
func recordDetails(r journal.Record) string {
	switch r.Kind {
	case journal.KindWrite:
		return fmt.Sprintf("off=%d len=%d data=%d crc32c=%08x", r.Offset, r.Length, r.DataOff, r.CRC)
	case journal.KindZero, journal.KindTrim:
		return fmt.Sprintf("off=%d len=%d", r.Offset, r.Length)
	case journal.KindWatermark:
		return "(heartbeat: every write acked before this time is in this file or an earlier one)"
	}
	s := fmt.Sprintf("label=%s", r.Label)
	if r.Group != "" {
		s += fmt.Sprintf(" group=%s group_seq=%d", r.Group, r.GroupSeq)
	}
	if len(r.Members) > 0 {
		s += " members=" + strings.Join(r.Members, ",")
	}
	if len(r.Args) > 0 {
		kv := make([]string, len(r.Args))
		for i, a := range r.Args {
			kv[i] = fmt.Sprintf("%s=%q", a.Key, a.Value)
		}
		s += " args=" + strings.Join(kv, ",")
	}
	return s
}
