package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/transport"
	"github.com/aimwan/aimwan/transport/identity"
	"github.com/aimwan/aimwan/transport/push"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// SourceConfig configures the source-edge proxy. Zero fields mean defaults
// unless marked required.
type SourceConfig struct {
	// Node is this proxy's name in hellos. "" means "proxy-source".
	Node string
	// Mode is how files travel: ModeOptimize (default) or ModePassthrough.
	Mode Mode
	// Peer is the destination-edge proxy's WAN address (host:port). Required.
	Peer string
	// Identity is this node's key pair. Required.
	Identity *transport.Identity
	// Pins are the fingerprints accepted for the peer. Required.
	Pins transport.Pins
	// LANPins are the senders (src) the LAN push listener accepts, by
	// fingerprint (--lan-peer-fp). Required: the LAN leg is mutual TLS too,
	// with the same Identity.
	LANPins transport.Pins
	// MaxConns caps the LAN push listener's connections (0:
	// push.DefaultMaxConns).
	MaxConns int
	// Transport tunes the QUIC connections (link rate, RTT, count...).
	Transport transport.Config
	// Schedule caps the WAN rate over the week; nil means unlimited.
	Schedule *transport.Schedule
	// Now is the clock of the schedule; nil means time.Now.
	Now func() time.Time
	// Params are the chunking parameters; they must equal the peer's.
	Params dedupe.Params
	// PeerChunks sizes a memory-only index of the peer's cache (chunks).
	// 0 means: the index kept beside Local (Store.PeerIndex, on disk for a
	// store in a folder, sized like it), or dedupe's default without Local.
	PeerChunks int
	// Level fixes the literal compression level; 0 means adaptive (chooseLevel).
	Level dedupe.Level
	// Local is this edge's own chunk store: with it, new chunks are
	// compressed against the chunks they probably replace (dedupe's delta
	// literals), which cuts clone traffic several times. nil means none. Its
	// owner (a Node) opens it and runs its saves.
	Local *dedupe.Store
	// MaxMemory bounds the bytes of files held at once; more offers are
	// refused with ErrBufferFull. 0 means 96 MiB (DefaultMaxMemory).
	MaxMemory int64
	// MaxFileSize is the largest file accepted. 0 means
	// push.DefaultMaxFileSize, at most MaxMemory.
	MaxFileSize int64
	// RetryFor is how long a file is retried over the WAN after connection
	// failures before the LAN push fails with ErrUnavailable. 0 means 1 minute.
	RetryFor time.Duration
	// Registerer receives the metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultMaxMemory is the default bound of the files a source edge holds
// while they cross: 24 journal files of 4 MiB, at 30 MB/s of ingest 3 s of
// end-to-end round trip. It is what MemoryBudget leaves once the source
// edge's fixed memory is counted (libzstd's context, the zstd encoder, the
// chunk store and the peer index: see MemoryBudget), so the whole proxy
// stays within 512 MiB resident. It was 256 MiB, which with the rest came
// to ~700 MiB at make demo's peak.
const DefaultMaxMemory = 96 << 20

// DefaultDestMaxMemory is the default bound of the files the destination
// edge holds while it rebuilds and pushes them (DestConfig.MaxMemory).
const DefaultDestMaxMemory = 256 << 20

func (c SourceConfig) withDefaults() SourceConfig {
	if c.Node == "" {
		c.Node = "proxy-source"
	}
	if c.Mode == 0 {
		c.Mode = ModeOptimize
	}
	if c.MaxMemory <= 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = min(push.DefaultMaxFileSize, c.MaxMemory)
	}
	if c.RetryFor <= 0 {
		c.RetryFor = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c SourceConfig) validate() error {
	switch {
	case c.Peer == "":
		return errors.New("source proxy: no WAN peer address")
	case c.Identity == nil:
		return errors.New("source proxy: no identity")
	case len(c.Pins) == 0:
		return errors.New("source proxy: no pinned peer fingerprint")
	case len(c.LANPins) == 0:
		return errors.New("source proxy: no pinned LAN sender (--lan-peer-fp: the fingerprint of src)")
	case c.Mode != ModeOptimize && c.Mode != ModePassthrough:
		return fmt.Errorf("source proxy: unknown mode %d", c.Mode)
	case c.MaxFileSize > c.MaxMemory:
		return fmt.Errorf("source proxy: max file size %d above memory limit %d", c.MaxFileSize, c.MaxMemory)
	}
	return c.Transport.Validate()
}

// Source is the source-edge proxy: a push.Handler for the LAN side that sends
// each file over the WAN and acks only when dst has stored it.
type Source struct {
	cfg      SourceConfig
	log      *slog.Logger
	paramsID string
	peer     *dedupe.PeerIndex // what the destination's store holds
	enc      *dedupe.Encoder   // level set per file (encode holds the slot)
	pool     *transport.Pool
	throttle *transport.Throttle
	m        *proxyMetrics
	reg      prometheus.Registerer
	refused  *identity.Refusals // senders refused on the LAN push listener

	mem     atomic.Int64 // bytes of files held
	queued  atomic.Int64 // encoded bytes not yet on the WAN
	encq    encodeQueue  // one encode at a time (see NewSource)
	maxRate float64      // measured LevelMax literal bytes per second (under the encode slot)

	handshakeMu sync.Mutex  // one control-stream handshake at a time, until one succeeded
	helloDone   atomic.Bool // a handshake succeeded while connections were up
}

var _ push.Handler = (*Source)(nil)

// NewSource validates cfg and builds the source edge.
func NewSource(cfg SourceConfig) (*Source, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p, err := cfg.Params.Normalize()
	if err != nil {
		return nil, fmt.Errorf("source proxy: %w", err)
	}
	if cfg.Level != 0 {
		if _, err := dedupe.NewEncoder(dedupe.EncoderConfig{Params: p, Level: cfg.Level}); err != nil {
			return nil, fmt.Errorf("source proxy: %w", err)
		}
	}
	peer := dedupe.NewPeerIndex(cfg.PeerChunks)
	if cfg.Local != nil && cfg.PeerChunks == 0 {
		// Beside the local store, on disk for a store in a folder.
		if peer, err = cfg.Local.PeerIndex(); err != nil {
			return nil, fmt.Errorf("source proxy: %w", err)
		}
	}
	// One encoder for every level, so the history dictionary (recent
	// literals) spans files encoded at any level.
	enc, err := dedupe.NewEncoder(dedupe.EncoderConfig{Params: p, Peer: peer, Level: cfg.Level, Local: cfg.Local, Track: true})
	if err != nil {
		return nil, fmt.Errorf("source proxy: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("source proxy metrics: %w", err)
	}
	stores := []storeSource{{"peer_index", peer.Stats}}
	if cfg.Local != nil {
		stores = append(stores, storeSource{"chunks", cfg.Local.Stats})
	}
	if err := registerStores(cfg.Registerer, stores...); err != nil {
		return nil, fmt.Errorf("source proxy metrics: %w", err)
	}
	s := &Source{cfg: cfg, log: cfg.Logger.With("role", "source-edge"), paramsID: p.ID(), peer: peer, enc: enc,
		maxRate: initialMaxRate, m: m, reg: cfg.Registerer, refused: identity.NewRefusals()}
	// Files are encoded one at a time, in arrival order (but a volume's
	// lower-numbered files first: encodeQueue). Encoding in
	// parallel was tried: two files with the same new chunks, encoded at
	// once, may then reach the destination in the other order than the one
	// the peer index assumed, and the later file's references miss (the
	// chunks cross the WAN twice). On a link-bound path dedupe is worth more
	// than ingest parallelism.
	s.throttle = transport.NewThrottle(transport.ThrottleConfig{Schedule: cfg.Schedule, Now: cfg.Now, OnRate: m.setCap, Logger: s.log})
	s.pool = &transport.Pool{Addr: cfg.Peer, Identity: cfg.Identity, Pins: cfg.Pins, Config: cfg.Transport,
		Throttle: s.throttle, Setup: s.handshake, Logger: s.log}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(transport.NewPoolCollector(cfg.Peer, s.pool)); err != nil {
			return nil, fmt.Errorf("source proxy metrics: %w", err)
		}
		if err := cfg.Registerer.Register(transport.NewStatsCollector(cfg.Peer, s.pool.Conns)); err != nil {
			return nil, fmt.Errorf("source proxy metrics: %w", err)
		}
		if err := cfg.Registerer.Register(push.NewRefusalsCollector(s.refused)); err != nil {
			return nil, fmt.Errorf("source proxy metrics: %w", err)
		}
		peerUp := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: metrics.ProxyPeerUp,
			Help: "1 while at least one WAN connection to the peer proxy is up, else 0."},
			func() float64 { return float64(min(len(s.pool.Conns()), 1)) })
		if err := cfg.Registerer.Register(peerUp); err != nil {
			return nil, fmt.Errorf("source proxy metrics: %w", err)
		}
	}
	return s, nil
}

// Throttle returns the WAN rate limiter (its schedule can be replaced while
// running).
func (s *Source) Throttle() *transport.Throttle { return s.throttle }

// Serve runs the WAN connections, the schedule and the LAN push server on ln
// until ctx ends.
func (s *Source) Serve(ctx context.Context, ln net.Listener) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.pool.Serve(ctx) })
	g.Go(func() error { return s.throttle.Serve(ctx) })
	auth := push.Auth{Identity: s.cfg.Identity, Peers: s.cfg.LANPins, Refusals: s.refused}
	srv := &push.Server{Node: s.cfg.Node, Handler: s, Auth: auth, Logger: s.log, MaxFileSize: s.cfg.MaxFileSize,
		MaxConns: s.cfg.MaxConns}
	g.Go(func() error { return srv.Serve(ctx, ln) })
	return g.Wait()
}

// Accept implements push.Handler: it reserves memory for the whole file.
func (s *Source) Accept(ctx context.Context, peer push.Hello, o push.Offer) (push.Sink, error) {
	if o.Size < 0 || o.Size > s.cfg.MaxFileSize {
		return nil, fmt.Errorf("file %s/%s of %d bytes (limit %d): %w", o.Volume, o.Name, o.Size, s.cfg.MaxFileSize, push.ErrBadOffer)
	}
	if s.mem.Add(o.Size) > s.cfg.MaxMemory {
		s.mem.Add(-o.Size)
		return nil, fmt.Errorf("proxy holds %d bytes of files already: %w", s.mem.Load(), push.ErrBufferFull)
	}
	s.m.inFlight.Inc()
	return &sink{s: s, o: o, buf: make([]byte, 0, o.Size)}, nil
}

// sink holds one file from the LAN until the far end acks it.
type sink struct {
	s    *Source
	o    push.Offer
	buf  []byte
	once sync.Once
}

var _ push.Sink = (*sink)(nil)

func (k *sink) Offset() int64 { return 0 } // a proxy keeps nothing between attempts

func (k *sink) Write(p []byte) (int, error) {
	if int64(len(k.buf)+len(p)) > k.o.Size {
		return 0, fmt.Errorf("file %s/%s: more than the offered %d bytes: %w", k.o.Volume, k.o.Name, k.o.Size, push.ErrBadOffer)
	}
	k.buf = append(k.buf, p...)
	return len(p), nil
}

func (k *sink) Commit(ctx context.Context) error {
	defer k.release()
	err := k.s.push(ctx, k.o, k.buf)
	k.s.m.files.WithLabelValues(resultLabel(err)).Inc()
	return err
}

func (k *sink) Abort() { k.release() }

func (k *sink) release() {
	k.once.Do(func() {
		k.s.mem.Add(-k.o.Size)
		k.s.m.inFlight.Dec()
		k.buf = nil
	})
}

func resultLabel(err error) string {
	if err == nil {
		return "ok"
	}
	return push.CodeOf(err).String()
}
