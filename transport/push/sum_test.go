package push

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// sumStore is a memStore that also answers checksum requests over a volume
// made of a pattern: byte i is byte(i/MinSumRange) (so every range differs).
type sumStore struct {
	*memStore
}

func (s *sumStore) Sums(ctx context.Context, peer Hello, q SumRequest) ([][SumSize]byte, error) {
	out := make([][SumSize]byte, q.Count)
	for i := range out {
		out[i] = patternSum(q, i)
	}
	return out, nil
}

func patternSum(q SumRequest, i int) [SumSize]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(q.Offset+int64(i)*q.Range))
	return sha256.Sum256(append(b[:], q.Volume...))
}

func TestSumRoundTrip(t *testing.T) {
	addr := startServer(t, &Server{Handler: &sumStore{memStore: newMemStore()}})
	c := dial(t, addr)
	q := SumRequest{Volume: "vol1", Stream: [16]byte{1}, End: 1 << 30, Offset: 1 << 20, Range: 1 << 16, Count: MaxSums}
	sums, err := c.Sums(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != q.Count || sums[7] != patternSum(q, 7) || sums[q.Count-1] != patternSum(q, q.Count-1) {
		t.Fatalf("got %d checksums, wrong content", len(sums))
	}
	// Files still flow on the same connection.
	b, o := testFile(1, 5000)
	if err := c.Push(context.Background(), o, strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
}

func TestSumRefusals(t *testing.T) {
	good := SumRequest{Volume: "vol1", Stream: [16]byte{1}, End: 1 << 30, Offset: 0, Range: 1 << 16, Count: 16}
	bad := map[string]func(q *SumRequest){
		"no stream":        func(q *SumRequest) { q.Stream = [16]byte{} },
		"range not pow2":   func(q *SumRequest) { q.Range = 3 << 12 },
		"range too small":  func(q *SumRequest) { q.Range = 512 },
		"range too large":  func(q *SumRequest) { q.Range = 1 << 31 },
		"count zero":       func(q *SumRequest) { q.Count = 0 },
		"count too large":  func(q *SumRequest) { q.Count = MaxSums + 1 },
		"span too large":   func(q *SumRequest) { q.Range, q.Count = 1<<30, 65 },
		"offset unaligned": func(q *SumRequest) { q.Offset = 100 },
		"offset past end":  func(q *SumRequest) { q.Offset = 1 << 30 },
		"end zero":         func(q *SumRequest) { q.End = 0 },
		"bad volume":       func(q *SumRequest) { q.Volume = "../x" },
	}
	for name, mut := range bad {
		q := good
		mut(&q)
		if err := q.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, q)
		}
	}
	// A forged SUM that skips the client's checks is refused by the server
	// with a NACK; the connection stays usable.
	addr := startServer(t, &Server{Handler: &sumStore{memStore: newMemStore()}})
	c := dial(t, addr)
	q := good
	q.Range = 3 << 12
	id, replies := c.register()
	p := &pushing{c: c, ctx: context.Background(), id: id, replies: replies}
	if err := p.send(Msg{Type: TypeSum, ID: id, Sum: q}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := p.wait()
	if err != nil || m.Type != TypeNack || !errors.Is(ErrorOf(m.Code, m.Text), ErrBadOffer) {
		t.Fatalf("forged SUM answered %+v, %v", m, err)
	}
	c.unregister(id)
	if _, err := c.Sums(context.Background(), good); err != nil {
		t.Fatalf("connection unusable after a refused SUM: %v", err)
	}
	// A handler that does not answer checksums refuses them.
	c2 := dial(t, startServer(t, &Server{Handler: newMemStore()}))
	if _, err := c2.Sums(context.Background(), good); !errors.Is(err, ErrUnknownVolume) {
		t.Fatalf("handler without Summer: %v", err)
	}
}

func TestSumsDecodeBounds(t *testing.T) {
	// A SUMS frame claiming more checksums than MaxSums, or more than it
	// carries, is a protocol error.
	body := binary.BigEndian.AppendUint64(nil, 1)
	body = binary.BigEndian.AppendUint16(body, MaxSums+1)
	if _, err := Decode(TypeSums, body); !errors.Is(err, ErrProtocol) {
		t.Fatalf("oversized count: %v", err)
	}
	body = binary.BigEndian.AppendUint64(nil, 1)
	body = binary.BigEndian.AppendUint16(body, 2)
	body = append(body, make([]byte, SumSize)...)
	if _, err := Decode(TypeSums, body); !errors.Is(err, ErrProtocol) {
		t.Fatalf("short body: %v", err)
	}
}
