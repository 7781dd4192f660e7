package proxy

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
)

// Files waiting for the encoder leave in arrival order, except that a
// volume's lower-numbered journal files go before its later ones: the
// order a restart scrambled is restored.
func TestEncodeQueueOrder(t *testing.T) {
	var q encodeQueue
	ctx := t.Context()
	if err := q.acquire(ctx, "holder", 0); err != nil {
		t.Fatal(err)
	}
	arrivals := []struct {
		vol string
		seq uint64
	}{
		{"vm1", 6},
		{"vm2", 4},
		{"vm1", 3},
		{"other", 0}, // no order within its volume
		{"vm2", 3},
		{"vm1", 4},
	}
	served := make(chan string, len(arrivals))
	for i, a := range arrivals {
		go func() {
			if err := q.acquire(ctx, a.vol, a.seq); err != nil {
				served <- "error: " + err.Error()
				return
			}
			served <- fmt.Sprintf("%s/%d", a.vol, a.seq)
		}()
		// Enqueue in this order.
		testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("waiter %d queued", i), func() bool { return q.waiting() == i+1 })
	}
	var got []string
	for range arrivals {
		q.release()
		select {
		case s := <-served:
			got = append(got, s)
		case <-time.After(10 * time.Second):
			t.Fatalf("no waiter served after %v", got)
		}
	}
	want := []string{
		"vm1/3", // the first in line is vm1: its lowest file first
		"vm1/4",
		"vm1/6",
		"vm2/3", // then vm2, lowest first
		"vm2/4",
		"other/0",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("served %v\nwant   %v", got, want)
	}
	q.release()
	if q.busy || q.waiting() != 0 {
		t.Fatal("the slot is still held after the last release")
	}
}

// A waiter whose context ends leaves the line; one handed the slot as its
// context ended passes it on, so the slot is never lost.
func TestEncodeQueueCancel(t *testing.T) {
	var q encodeQueue
	if err := q.acquire(t.Context(), "v", 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- q.acquire(ctx, "v", 1) }()
	testkit.WaitFor(t, 10*time.Second, "waiter queued", func() bool { return q.waiting() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled acquire: %v", err)
	}
	if q.waiting() != 0 {
		t.Fatal("a canceled waiter is still in line")
	}
	// Many waiters canceled around releases: the slot ends free.
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			if q.acquire(ctx, "v", uint64(i+2)) == nil {
				q.release()
			}
			close(done)
		}()
		if i%2 == 0 {
			cancel()
			q.release()
			if err := q.acquire(t.Context(), "v", 0); err != nil {
				t.Fatal(err)
			}
		} else {
			q.release()
			if err := q.acquire(t.Context(), "v", 0); err != nil {
				t.Fatal(err)
			}
			cancel()
		}
		<-done
	}
	q.release()
	if q.busy || q.waiting() != 0 {
		t.Fatalf("slot busy=%v with %d waiting after the cancels", q.busy, q.waiting())
	}
}
