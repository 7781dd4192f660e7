package link

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrBadConfig is wrapped by every configuration and parse error.
var ErrBadConfig = errors.New("bad link config")

// Outage is an interval, relative to the start of Serve, when the primary
// line is down.
type Outage struct {
	Start    time.Duration // when the line goes down
	Duration time.Duration // how long it stays down
}

// PipeConfig is one direction of the simulated line. The zero value is a
// 2 Mbit/s line with 20 ms one-way delay and a 64 KiB queue.
type PipeConfig struct {
	// Rate of the line in bytes per second (wire bytes). Default 250000
	// (2 Mbit/s). +Inf means no rate limit.
	Rate float64
	// Delay is the one-way propagation delay (half the RTT). Default 20ms;
	// a negative value means none.
	Delay time.Duration
	// Jitter adds a uniform random [0, Jitter) to each packet's delay,
	// keeping packets in order.
	Jitter time.Duration
	// Queue is the drop-tail queue size in bytes. Default: 100 ms at Rate,
	// at least 32 KiB.
	Queue int64
	// Loss is the probability (0..1) that a datagram is lost.
	Loss float64
	// Duplicate is the probability (0..1) that a datagram arrives twice.
	Duplicate float64
	// Reorder is the probability (0..1) that a datagram is held back by
	// ReorderDelay and overtaken by the ones behind it.
	Reorder float64
	// ReorderDelay is the extra delay of a reordered datagram. Default 10ms.
	ReorderDelay time.Duration
	// Cross is the rate of cross traffic in bytes per second, sent in
	// packets of CrossPacket bytes at regular intervals.
	Cross float64
	// CrossPacket is the size of a cross-traffic packet. Default 200 bytes
	// (a G.711 VoIP packet with headers).
	CrossPacket int
	// Outages of the primary line.
	Outages []Outage
	// BackupRate is the rate of the backup line used during outages; 0 means
	// no backup line (traffic is dropped during an outage).
	BackupRate float64
	// Seed for the random impairments; the same seed gives the same
	// decisions for the same packet sequence.
	Seed uint64
}

func (c PipeConfig) withDefaults() PipeConfig {
	if c.Rate == 0 {
		c.Rate = 250_000
	}
	if c.Delay == 0 {
		c.Delay = 20 * time.Millisecond
	} else if c.Delay < 0 {
		c.Delay = 0
	}
	if c.Queue == 0 {
		c.Queue = 32 << 10
		if !math.IsInf(c.Rate, 1) {
			c.Queue = max(c.Queue, int64(c.Rate/10))
		}
	}
	if c.ReorderDelay == 0 {
		c.ReorderDelay = 10 * time.Millisecond
	}
	if c.CrossPacket == 0 {
		c.CrossPacket = 200
	}
	return c
}

func (c PipeConfig) validate() error {
	prob := func(name string, p float64) error {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("%w: %s %v is not a probability in [0, 1]", ErrBadConfig, name, p)
		}
		return nil
	}
	switch {
	case !(c.Rate > 0):
		return fmt.Errorf("%w: rate %v must be positive", ErrBadConfig, c.Rate)
	case c.Jitter < 0 || c.ReorderDelay < 0:
		return fmt.Errorf("%w: jitter and reorder delay must not be negative", ErrBadConfig)
	case c.Queue < 1500:
		return fmt.Errorf("%w: queue %d bytes is below one packet (1500)", ErrBadConfig, c.Queue)
	case !(c.Cross >= 0) || math.IsInf(c.Cross, 1):
		return fmt.Errorf("%w: cross traffic rate %v must be finite and not negative", ErrBadConfig, c.Cross)
	case c.CrossPacket < 1 || c.CrossPacket > 65535:
		return fmt.Errorf("%w: cross packet size %d is out of 1..65535", ErrBadConfig, c.CrossPacket)
	case !(c.BackupRate >= 0):
		return fmt.Errorf("%w: backup rate %v must not be negative", ErrBadConfig, c.BackupRate)
	}
	for _, p := range []struct {
		n string
		v float64
	}{{"loss", c.Loss}, {"duplicate", c.Duplicate}, {"reorder", c.Reorder}} {
		if err := prob(p.n, p.v); err != nil {
			return err
		}
	}
	for _, o := range c.Outages {
		if o.Start < 0 || o.Duration <= 0 {
			return fmt.Errorf("%w: outage %v+%v needs a start ≥ 0 and a positive duration", ErrBadConfig, o.Start, o.Duration)
		}
	}
	return nil
}

// Config is the relay: where it listens, where it relays to, and the line
// between (the same settings for both directions).
type Config struct {
	// Listen is the address (host:port) the relay listens on, UDP and TCP.
	Listen string
	// To is the address the relay forwards to, UDP and TCP.
	To string
	// Line is the simulated line, applied to each direction.
	Line PipeConfig
	// UDPIdle ends a UDP client mapping after this long without traffic.
	// Default 2m.
	UDPIdle time.Duration
	// Metrics registers the link's metrics; nil means none are kept.
	Metrics prometheus.Registerer
	// Logger for events; nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	c.Line = c.Line.withDefaults()
	if c.UDPIdle == 0 {
		c.UDPIdle = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	if c.Listen == "" || c.To == "" {
		return fmt.Errorf("%w: both a listen address and a --to address are needed", ErrBadConfig)
	}
	return c.Line.validate()
}

// ParseOutages parses an outage schedule: comma-separated START+DURATION
// items, times from the start of the relay, e.g. "30s+10s,2m+5s".
func ParseOutages(s string) ([]Outage, error) {
	var out []Outage
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		a, b, ok := strings.Cut(item, "+")
		if !ok {
			return nil, fmt.Errorf("%w: outage %q: want START+DURATION, e.g. 30s+10s", ErrBadConfig, item)
		}
		start, err1 := time.ParseDuration(strings.TrimSpace(a))
		dur, err2 := time.ParseDuration(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || start < 0 || dur <= 0 {
			return nil, fmt.Errorf("%w: outage %q: want START+DURATION with START ≥ 0 and DURATION > 0", ErrBadConfig, item)
		}
		out = append(out, Outage{Start: start, Duration: dur})
	}
	return out, nil
}

// ParseProbability parses "0.1%" or "0.001" into 0.001.
func ParseProbability(s string) (float64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	if strings.HasSuffix(t, "%") {
		t, scale = strings.TrimSpace(strings.TrimSuffix(t, "%")), 0.01
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v*scale >= 0 && v*scale <= 1) {
		return 0, fmt.Errorf("%w: %q is not a probability (0..1 or 0%%..100%%)", ErrBadConfig, s)
	}
	return v * scale, nil
}
