package aimdst

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/identity"
)

// VolumeConfig is one destination volume.
type VolumeConfig struct {
	Name   string `yaml:"name"`   // volume name, as the source calls it (journal.ValidName)
	Path   string `yaml:"path"`   // destination volume: a regular file or a block device
	Create bool   `yaml:"create"` // create a missing file (sparse, sized from the journal) instead of going offline
}

// Config configures a destination node. The zero value of every field but
// BufferDir and Volumes means its default.
type Config struct {
	Node        string              // node name sent in the push handshake; default "dst"
	BufferDir   string              // destination buffer: one folder per volume (required)
	SnapshotDir string              // snapshots go to <SnapshotDir>/<volume>/<label>.img; default <BufferDir>/snapshots-of-markers
	Volumes     []VolumeConfig      // the volumes this node receives (at least one)
	Hooks       map[string]string   // custom marker label -> shell command (run with /bin/sh -c)
	Groups      map[string][]string // consistency group -> member volumes
	BufferLimit int64               // bytes the destination buffer may hold before new files are refused; default 4 GiB
	MaxFileSize int64               // largest journal file accepted; default 256 MiB
	HookTimeout time.Duration       // a hook running longer is killed; default 1m
	RetryMin    time.Duration       // first back-off after a failed destage (volume offline...); default 100ms
	RetryMax    time.Duration       // longest back-off; default 5s
	// Retention are the snapshot retention policies (none: snapshots are
	// kept until deleted). See RetentionPolicy.
	Retention  []RetentionPolicy
	PartExpiry time.Duration // a partial file nobody resumed for this long is removed; default 10m
	// NoRebindSnapshot skips the copy of a destination volume taken before
	// an initialize's new stream is applied to it (see Rebind in
	// docs/destination-node.md). Default: the copy is taken.
	NoRebindSnapshot bool

	// Identity is this node's key pair, presented to every sender (aimwan
	// keygen; --key DIR), and Pins are the senders it accepts (--peer-fp):
	// src's fingerprint, or the destination-edge proxy's. Serve requires
	// both: the push listener is mutual TLS only.
	Identity *identity.Identity
	Pins     identity.Pins
	// MaxConns caps the push listener's connections (default
	// push.DefaultMaxConns; one remote host may hold at most
	// push.DefaultMaxConnsPerHost of them).
	MaxConns int

	Logger     *slog.Logger          // nil: slog.Default()
	Registerer prometheus.Registerer // metrics go here; nil: not registered
	Now        func() time.Time      // clock for Time Latency; nil: time.Now

	openVolume openVolumeFunc // tests inject failing volumes; nil: openOSVolume
}

// Defaults.
const (
	DefaultBufferLimit = 4 << 30
	DefaultMaxFileSize = 256 << 20
	DefaultHookTimeout = time.Minute
	DefaultPartExpiry  = 10 * time.Minute
)

// ErrConfig is wrapped by NewNode's errors about the configuration itself.
var ErrConfig = errors.New("invalid destination node configuration")

// withDefaults returns a copy with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Node == "" {
		c.Node = "dst"
	}
	if c.BufferDir != "" {
		c.SnapshotDir = c.SnapshotDirOrDefault()
	}
	if c.BufferLimit == 0 {
		c.BufferLimit = DefaultBufferLimit
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.HookTimeout == 0 {
		c.HookTimeout = DefaultHookTimeout
	}
	if c.RetryMin == 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.PartExpiry == 0 {
		c.PartExpiry = DefaultPartExpiry
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.openVolume == nil {
		c.openVolume = openOSVolume
	}
	return c
}

// validate checks a configuration after withDefaults.
func (c Config) validate() error {
	if c.BufferDir == "" {
		return errors.New("dst config: buffer folder not set")
	}
	if len(c.Volumes) == 0 {
		return errors.New("dst config: no volumes")
	}
	if c.BufferLimit < 0 || c.MaxFileSize < 0 || c.HookTimeout < 0 || c.RetryMin < 0 || c.RetryMax < c.RetryMin || c.PartExpiry < 0 || c.MaxConns < 0 {
		return errors.New("dst config: negative limit, or retry max below retry min")
	}
	seen := map[string]bool{}
	for _, v := range c.Volumes {
		if err := journal.ValidName(v.Name); err != nil {
			return fmt.Errorf("dst config: volume name: %w", err)
		}
		if v.Name == "snapshots-of-markers" {
			return fmt.Errorf("dst config: volume name %q is reserved", v.Name)
		}
		if v.Path == "" {
			return fmt.Errorf("dst config: volume %s: no path", v.Name)
		}
		if seen[v.Name] {
			return fmt.Errorf("dst config: volume %s given twice", v.Name)
		}
		seen[v.Name] = true
	}
	for label := range c.Hooks {
		if err := journal.ValidName(label); err != nil {
			return fmt.Errorf("dst config: hook label: %w", err)
		}
	}
	for g, members := range c.Groups {
		if err := journal.ValidName(g); err != nil {
			return fmt.Errorf("dst config: group name: %w", err)
		}
		if len(members) == 0 {
			return fmt.Errorf("dst config: group %s has no members", g)
		}
		for _, m := range members {
			if !seen[m] {
				return fmt.Errorf("dst config: group %s: member %q is not a volume of this node", g, m)
			}
		}
	}
	if err := validateRetention(c.Retention, seen); err != nil {
		return fmt.Errorf("dst config: %w", err)
	}
	return nil
}

// SnapshotDirOrDefault is the snapshot folder the node uses: SnapshotDir, or
// its default below BufferDir.
func (c Config) SnapshotDirOrDefault() string {
	if c.SnapshotDir != "" {
		return c.SnapshotDir
	}
	return filepath.Join(c.BufferDir, "snapshots-of-markers")
}
