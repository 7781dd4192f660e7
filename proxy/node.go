package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/transport"
)

// Default addresses of a proxy node. The source edge listens where src
// pushes; the destination edge forwards to dst's default listen address.
const (
	DefaultLANListen     = "127.0.0.1:7810"
	DefaultWANListen     = ":7820"
	DefaultLANForward    = "127.0.0.1:7800" // aimwan dst's default --listen
	DefaultSourceMetrics = "127.0.0.1:9711"
	DefaultDestMetrics   = "127.0.0.1:9712"
	// DefaultScheduleCheck is how often a schedule file is checked for changes.
	DefaultScheduleCheck = 5 * time.Second
)

// ErrConfig is wrapped by every configuration error of a Node.
var ErrConfig = errors.New("invalid proxy configuration")

// Role is which edge a Node is.
type Role int

// The two edges.
const (
	RoleSource Role = iota + 1 // accepts LAN pushes from src, sends over the WAN
	RoleDest                   // accepts the WAN, pushes to dst
)

// String names the role as the logs do.
func (r Role) String() string {
	switch r {
	case RoleSource:
		return "source edge"
	case RoleDest:
		return "destination edge"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Config configures a proxy node: one edge with its chunk cache, schedule,
// metrics and recording. The role follows from the addresses given: LANListen
// or WANPeer make a source edge, WANListen or LANForward a destination edge.
// The zero value of every other field means its default.
type Config struct {
	// Node names this proxy in hellos ("" = proxy-source / proxy-destination)
	// and its recording ("" = proxy).
	Node string
	// Mode is ModeOptimize (default) or ModePassthrough.
	Mode Mode
	// Identity is this node's key pair (aimwan keygen). Required.
	Identity *transport.Identity
	// Pins are the WAN peer's fingerprints accepted (--peer-fp). Required.
	Pins transport.Pins
	// LANPins are the LAN peers' fingerprints accepted (--lan-peer-fp): src
	// at the source edge, dst at the destination edge. Required: the LAN
	// leg is mutual TLS with the same Identity.
	LANPins transport.Pins
	// MaxConns caps the source edge's LAN push listener (0:
	// push.DefaultMaxConns).
	MaxConns int
	// Transport tunes the QUIC connections (link rate, RTT, count).
	Transport transport.Config
	// Level fixes the literal compression level; 0 means adaptive.
	Level dedupe.Level

	// LANListen is the source edge's push listen address (default
	// DefaultLANListen).
	LANListen string
	// WANPeer is the destination edge's UDP address; required at the source edge.
	WANPeer string
	// Schedule caps the source edge's WAN rate: a schedule file (reloaded
	// when it changes) or inline rules separated by ';' (docs/deployment.md).
	// "" means unlimited.
	Schedule string
	// ScheduleCheck is how often the schedule file is checked for changes
	// (default DefaultScheduleCheck).
	ScheduleCheck time.Duration
	// MaxMemory bounds the bytes of files an edge holds at once: the source
	// edge's offered files, the destination edge's files being rebuilt and
	// pushed (0 = DefaultMaxMemory at the source edge, DefaultDestMaxMemory
	// at the destination edge).
	MaxMemory int64

	// WANListen is the destination edge's QUIC (UDP) listen address (default
	// DefaultWANListen).
	WANListen string
	// LANForward is dst's push address (default DefaultLANForward).
	LANForward string
	// MissWait caps how long the destination edge waits for files sent
	// before a file to be decoded first (DestConfig.MissWait).
	MissWait time.Duration

	// Cache is the chunk store folder ("" = a temporary folder, removed
	// when the node stops). A store that cannot be loaded is moved aside to
	// Cache.bad and the edge starts cold.
	Cache string
	// CacheSize is the chunk store's capacity in bytes of disk (0 = dedupe's
	// default: half the free space of its file system, at most 32 GiB).
	CacheSize int64

	// Metrics is the Prometheus listen address, "off" for none (default
	// DefaultSourceMetrics or DefaultDestMetrics).
	Metrics string
	// Record, when set, is the folder the metrics are recorded to as JSONL
	// once a second (<Record>/<Node>.jsonl).
	Record string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// role returns the role the addresses choose.
func (c Config) role() (Role, error) {
	source := c.LANListen != "" || c.WANPeer != ""
	dest := c.WANListen != "" || c.LANForward != ""
	switch {
	case source && dest:
		return 0, fmt.Errorf("%w: give either --lan-listen/--wan-peer (source edge) or --wan-listen/--lan-forward (destination edge), not both", ErrConfig)
	case source:
		return RoleSource, nil
	case dest:
		return RoleDest, nil
	}
	return 0, fmt.Errorf("%w: choose a role: --wan-peer ADDR (source edge) or --lan-forward ADDR (destination edge)", ErrConfig)
}

// populate fills in the defaults of role.
func (c *Config) populate(role Role) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ScheduleCheck <= 0 {
		c.ScheduleCheck = DefaultScheduleCheck
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	if role == RoleSource {
		def(&c.LANListen, DefaultLANListen)
		def(&c.Metrics, DefaultSourceMetrics)
	} else {
		def(&c.WANListen, DefaultWANListen)
		def(&c.LANForward, DefaultLANForward)
		def(&c.Metrics, DefaultDestMetrics)
	}
}

// validate checks what the edges do not check themselves.
func (c *Config) validate(role Role) error {
	switch {
	case c.Identity == nil:
		return fmt.Errorf("%w: no identity (--key DIR, made by aimwan keygen)", ErrConfig)
	case len(c.Pins) == 0:
		return fmt.Errorf("%w: no pinned peer fingerprint (--peer-fp: the other proxy's, printed by its aimwan keygen)", ErrConfig)
	case len(c.LANPins) == 0 && role == RoleSource:
		return fmt.Errorf("%w: no pinned LAN peer (--lan-peer-fp: the fingerprint of src, printed by its aimwan keygen)", ErrConfig)
	case len(c.LANPins) == 0:
		return fmt.Errorf("%w: no pinned LAN peer (--lan-peer-fp: the fingerprint of dst, printed by its aimwan keygen)", ErrConfig)
	case role == RoleSource && c.WANPeer == "":
		return fmt.Errorf("%w: the source edge needs --wan-peer ADDR (the destination edge)", ErrConfig)
	case c.CacheSize < 0 || c.MaxMemory < 0:
		return fmt.Errorf("%w: negative cache size or memory limit", ErrConfig)
	}
	if err := c.Transport.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// Node is a running proxy: one edge, its chunk cache, its schedule file
// watch, its metrics listener and its recorder.
type Node struct {
	cfg        Config
	role       Role
	log        *slog.Logger
	reg        *prometheus.Registry
	store      *dedupe.Store
	closeStore func() // closes the store (and removes a temporary one)
	src        *Source
	dst        *Dest
	lanLn      net.Listener        // source edge
	wanLn      *transport.Listener // destination edge
	metLn      net.Listener        // nil: metrics off
	rec        *metrics.Recorder   // nil: not recording
	schedFile  string              // watched schedule file, if any
}

// NewNode checks cfg, opens the chunk cache, builds the edge and binds its
// listeners. Serve runs it; Close releases it when Serve is never called.
// Configuration errors wrap ErrConfig.
func NewNode(cfg Config) (*Node, error) {
	role, err := cfg.role()
	if err != nil {
		return nil, err
	}
	cfg.populate(role)
	if err := cfg.validate(role); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, role: role, log: cfg.Logger, reg: prometheus.NewRegistry()}
	if n.store, n.closeStore, err = openCache(cfg.Cache, cfg.CacheSize, n.log); err != nil {
		return nil, err
	}
	if role == RoleSource {
		err = n.newSource()
	} else {
		err = n.newDest()
	}
	if err == nil {
		err = n.newMetrics()
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// newSource builds the source edge and binds its LAN listener. Its own store
// lets new chunks be compressed against the ones they replace, and keeps
// the index of what the peer's store holds beside it.
func (n *Node) newSource() error {
	c := n.cfg
	sched, file, err := loadSchedule(c.Schedule)
	if err != nil {
		return err
	}
	n.schedFile = file
	n.src, err = NewSource(SourceConfig{Node: c.Node, Mode: c.Mode, Peer: c.WANPeer, Identity: c.Identity,
		Pins: c.Pins, LANPins: c.LANPins, MaxConns: c.MaxConns, Transport: c.Transport, Schedule: sched, Level: c.Level,
		Local: n.store, MaxMemory: c.MaxMemory,
		Registerer: n.registerer(), Logger: n.log})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if n.lanLn, err = net.Listen("tcp", c.LANListen); err != nil {
		return fmt.Errorf("proxy: listen --lan-listen: %w", err)
	}
	return nil
}

// newDest builds the destination edge and binds its QUIC listener.
func (n *Node) newDest() error {
	c := n.cfg
	if c.Schedule != "" {
		n.log.Warn("--schedule applies to the source edge (it caps what is sent); ignored here")
	}
	var err error
	n.dst, err = NewDest(DestConfig{Node: c.Node, Push: c.LANForward, Identity: c.Identity, LANPins: c.LANPins,
		Store: n.store, MissWait: c.MissWait, MaxMemory: c.MaxMemory,
		Registerer: n.registerer(), Logger: n.log})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if n.wanLn, err = transport.Listen(c.WANListen, c.Identity, c.Pins, c.Transport, n.log); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	return nil
}

// registerer is where the edge registers its metrics: the node's registry,
// each metric labelled with the edge's role (metrics.LabelRole), so the
// figures of the two edges are told apart and never counted twice.
func (n *Node) registerer() prometheus.Registerer {
	return prometheus.WrapRegistererWith(prometheus.Labels{metrics.LabelRole: n.role.label()}, n.reg)
}

// label is the role's value of the metrics.LabelRole label.
func (r Role) label() string {
	if r == RoleSource {
		return metrics.RoleSource
	}
	return metrics.RoleDestination
}

// newMetrics binds the metrics listener and makes the recorder.
func (n *Node) newMetrics() error {
	var err error
	if n.cfg.Metrics != "off" {
		if n.metLn, err = metrics.Listen(n.cfg.Metrics, n.log); err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
	}
	if n.cfg.Record != "" {
		name := n.cfg.Node
		if name == "" {
			name = "proxy"
		}
		n.rec, err = metrics.NewRecorder(metrics.RecorderConfig{Dir: n.cfg.Record, Daemon: name, Gatherer: n.reg, Logger: n.log})
		if err != nil {
			return fmt.Errorf("%w: --record: %w", ErrConfig, err)
		}
	}
	return nil
}

// Role is the edge this node is.
func (n *Node) Role() Role { return n.role }

// LANAddr is the source edge's push listen address (nil at the destination edge).
func (n *Node) LANAddr() net.Addr {
	if n.lanLn == nil {
		return nil
	}
	return n.lanLn.Addr()
}

// WANAddr is the destination edge's QUIC listen address (nil at the source edge).
func (n *Node) WANAddr() net.Addr {
	if n.wanLn == nil {
		return nil
	}
	return n.wanLn.Addr()
}

// MetricsAddr is the metrics listen address (nil when metrics are off).
func (n *Node) MetricsAddr() net.Addr {
	if n.metLn == nil {
		return nil
	}
	return n.metLn.Addr()
}

// Serve runs the edge, the chunk cache's saves (the last one when ctx ends),
// the schedule file watch, the metrics listener and the recorder until ctx
// ends, then returns nil; or the first error of any of them. Each part
// closes its listener when it returns.
func (n *Node) Serve(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	if n.src != nil {
		n.log.Info("source edge up", "lan", n.lanLn.Addr().String(), "wan_peer", n.cfg.WANPeer,
			"mode", n.src.cfg.Mode.String(), "fingerprint", n.cfg.Identity.Fingerprint.String())
		g.Go(func() error { return n.src.Serve(ctx, n.lanLn) })
		if n.schedFile != "" {
			g.Go(func() error { return watchSchedule(ctx, n.schedFile, n.cfg.ScheduleCheck, n.src.Throttle(), n.log) })
		}
	} else {
		n.log.Info("destination edge up", "wan", n.wanLn.Addr().String(), "forward", n.cfg.LANForward,
			"fingerprint", n.cfg.Identity.Fingerprint.String())
		g.Go(func() error { return n.dst.Serve(ctx, n.wanLn) })
	}
	g.Go(func() error { return n.store.Serve(ctx) })
	if n.metLn != nil {
		g.Go(func() error { return metrics.ServeMetricsListener(ctx, n.metLn, n.reg, n.log) })
	}
	if n.rec != nil {
		g.Go(func() error { return n.rec.Serve(ctx) })
	}
	err := g.Wait()
	n.closeStore() // after everything that used it ended
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Close releases the listeners and the chunk store of a node whose Serve
// is never called.
func (n *Node) Close() {
	if n.closeStore != nil {
		n.closeStore()
	}
	if n.lanLn != nil {
		n.lanLn.Close()
	}
	if n.wanLn != nil {
		n.wanLn.Close()
	}
	if n.metLn != nil {
		n.metLn.Close()
	}
}
