package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// record encodes one part record (tag included).
func record(id TransferID, index int, payload []byte) []byte {
	b := append([]byte{PartTag}, id[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(index))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// serve feeds records to the assembler as one part stream and returns
// the status codes it answered.
func serve(t *testing.T, a *Assembler, records ...[]byte) ([]byte, error) {
	t.Helper()
	in := bytes.Join(records, nil)
	var out bytes.Buffer
	err := a.serveRecords(bytes.NewReader(in[1:]), &out, func() uint64 { return 7 })
	var codes []byte
	for b := out.Bytes(); len(b) >= statusLen; b = b[statusLen:] {
		st := parseStatus([statusLen]byte(b[:statusLen]))
		if st.received != 7 {
			t.Errorf("status reports %d bytes received, want 7", st.received)
		}
		codes = append(codes, st.code)
	}
	return codes, err
}

func TestAssemblerPutsPartsInPlace(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Logger: quietLog})
	id := TransferID{1}
	data := randomBytes(1, 10_000)
	got := make(chan []byte, 1)
	go func() {
		b, err := a.Receive(t.Context(), id, int64(len(data)), MinPartSize)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	// Parts in any order, some before the transfer is registered (kept
	// aside), one twice (stored once).
	codes, err := serve(t, a, record(id, 2, data[8192:]), record(id, 0, data[:4096]), record(id, 0, data[:4096]))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("serve: %v", err)
	}
	if string(codes) != "\x00\x00\x00" {
		t.Errorf("status codes %v, want all stored", codes)
	}
	if _, err := serve(t, a, record(id, 1, data[4096:8192])); !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatal("transfer assembled wrong")
	}
	// A late copy of a part of the finished transfer is acknowledged.
	if codes, _ := serve(t, a, record(id, 1, data[4096:8192])); string(codes) != "\x00" {
		t.Errorf("late copy answered %v", codes)
	}
}

func TestAssemblerRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		record []byte
		want   error // from serveRecords
	}{
		{"bad tag", append([]byte{0}, record(TransferID{2}, 0, []byte("x"))[1:]...), ErrPart},
		{"empty part", record(TransferID{2}, 0, nil), ErrPart},
		{"truncated payload", record(TransferID{2}, 0, make([]byte, 100))[:60], ErrPart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAssembler(AssemblerConfig{Logger: quietLog})
			in := append([]byte{PartTag}, record(TransferID{3}, 0, []byte("ok"))[1:]...)
			in = append(in, tc.record...)
			err := a.serveRecords(bytes.NewReader(in[1:]), io.Discard, func() uint64 { return 0 })
			if !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("part that does not fit", func(t *testing.T) {
		a := NewAssembler(AssemblerConfig{Logger: quietLog})
		id := TransferID{4}
		done := make(chan error, 1)
		go func() {
			_, err := a.Receive(t.Context(), id, 5000, MinPartSize)
			done <- err
		}()
		for {
			a.mu.Lock()
			_, ok := a.xfers[id]
			a.mu.Unlock()
			if ok {
				break
			}
			time.Sleep(time.Millisecond)
		}
		_, _ = serve(t, a, record(id, 1, make([]byte, 100))) // part 1 holds 904 bytes
		if err := <-done; !errors.Is(err, ErrPart) {
			t.Errorf("Receive: %v, want ErrPart", err)
		}
	})
	t.Run("early parts over the bound", func(t *testing.T) {
		a := NewAssembler(AssemblerConfig{Logger: quietLog, MaxEarly: 5000})
		codes, _ := serve(t, a, record(TransferID{5}, 0, make([]byte, 4096)), record(TransferID{5}, 1, make([]byte, 4096)))
		if string(codes) != "\x00\x01" {
			t.Errorf("codes %v, want stored then refused", codes)
		}
	})
}

func TestReceiveValidates(t *testing.T) {
	a := NewAssembler(AssemblerConfig{Logger: quietLog})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		size     int64
		partSize int
	}{{100, 1}, {100, MaxPartSize + 1}, {-1, MinPartSize}} {
		if _, err := a.Receive(ctx, TransferID{6}, tc.size, tc.partSize); !errors.Is(err, ErrPart) {
			t.Errorf("Receive(%d, %d): %v, want ErrPart", tc.size, tc.partSize, err)
		}
	}
}

// FuzzPartRecords feeds arbitrary bytes to the assembler as a part stream
// while a transfer waits: nothing may panic, hang or put bytes outside the
// transfer.
func FuzzPartRecords(f *testing.F) {
	id := TransferID{9}
	f.Add(bytes.Join([][]byte{record(id, 0, make([]byte, 4096)), record(id, 1, []byte("tail"))}, nil))
	f.Add(record(TransferID{8}, 3, []byte("early")))
	f.Add(record(id, 7, make([]byte, 10)))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		a := NewAssembler(AssemblerConfig{Logger: quietLog, MaxEarly: 1 << 20})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		got := make(chan []byte, 1)
		go func() {
			b, _ := a.Receive(ctx, id, 4100, MinPartSize)
			got <- b
		}()
		_ = a.serveRecords(bytes.NewReader(in[1:]), io.Discard, func() uint64 { return 0 })
		cancel()
		if b := <-got; b != nil && len(b) != 4100 {
			t.Fatalf("assembled %d bytes for a 4100-byte transfer", len(b))
		}
	})
}
