package aimsrc

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/identity"
	"github.com/aimwan/aimwan/transport/push"
	"github.com/prometheus/client_golang/prometheus"
)

// Default addresses of the source node's listeners (all loopback).
const (
	DefaultNBDAddr     = "127.0.0.1:10809"
	DefaultPushAddr    = "127.0.0.1:7800"
	DefaultControlAddr = "127.0.0.1:7701"
	DefaultMetricsAddr = "127.0.0.1:9701"
	// DefaultInitBlock is the block size of initialize and resync reads.
	DefaultInitBlock = 1 << 20
	// DefaultDirtyGranularity is the region size one dirty-bitmap bit covers.
	DefaultDirtyGranularity = 64 << 10
	// DefaultPushWindow is how many files of one volume may be in flight.
	DefaultPushWindow = 4
	// CoalesceMaxFile caps the payload a journal file collects with
	// coalescing on (see coalesceCeiling): far below the 256 MiB the push
	// servers (dst, proxies) accept by default.
	CoalesceMaxFile = 64 << 20
	// coalesceFileFactor is how many replication file sizes of raw payload
	// a coalescing journal file may collect.
	coalesceFileFactor = 16
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid source node configuration")

// VolumeConfig describes one protected volume.
type VolumeConfig struct {
	// Name is the NBD export name and the journal folder name; checked with
	// journal.ValidName.
	Name string
	// Path is the volume's image file.
	Path string
	// Size creates the image at this size when it does not exist (0: the
	// image must exist). An existing image keeps its size; a Size different
	// from it is an error.
	Size int64
}

// GroupConfig is a consistency group: markers issued for it are placed
// atomically in all its member volumes.
type GroupConfig struct {
	// Name of the group; checked with journal.ValidName.
	Name string
	// Volumes are the member volume names (at least one, each configured).
	Volumes []string
}

// Config of a source node. The zero value of every field means its default.
type Config struct {
	// Node is the node's name in push hellos (default: the host name).
	Node string
	// Buffer is the source buffer folder (required).
	Buffer string
	// Volumes are the protected volumes (at least one).
	Volumes []VolumeConfig
	// Groups are the consistency groups (optional).
	Groups []GroupConfig
	// Schedules are scheduled snapshot markers (optional; see
	// ScheduleConfig).
	Schedules []ScheduleConfig
	// NBD is the NBD listen address (default DefaultNBDAddr).
	NBD string
	// Push is the address of the next hop speaking the push protocol: dst or
	// a source-edge proxy (default DefaultPushAddr).
	Push string
	// Identity is this node's key pair, presented to the next hop (aimwan
	// keygen; --key DIR). Required: pushing is mutual TLS only.
	Identity *identity.Identity
	// Pins are the fingerprints the next hop may present (--peer-fp): dst's,
	// or the source-edge proxy's. Required.
	Pins identity.Pins
	// Control is the loopback address of the control API (default
	// DefaultControlAddr).
	Control string
	// Metrics is the Prometheus listen address (default DefaultMetricsAddr;
	// "off" disables it).
	Metrics string
	// NBDMaxConns caps the NBD connections served at once (0:
	// nbd.DefaultMaxConns); more are closed at once.
	NBDMaxConns int
	// BufferLimit bounds the bytes of journal files on disk for all volumes;
	// past it volumes go to pull-ahead (0: no limit).
	BufferLimit int64
	// FileSize is the replication file size: payload bytes after which a
	// journal file is sealed (0: the journal's default).
	FileSize int64
	// FileAge seals a non-empty journal file this old (0: the journal's
	// default).
	FileAge time.Duration
	// Coalesce is the write-coalescing window (0: off). A volume's open
	// journal file collects writes for up to this long (it becomes the file
	// age; a FileAge different from it is an error) or until its raw
	// payload reaches coalesceCeiling(FileSize), and is then sealed
	// coalesced: writes that later writes in the file overwrote are
	// dropped. Markers end a window. RPO grows by up to the window.
	Coalesce time.Duration
	// PushWindow is how many files of one volume may be in flight at once
	// (default DefaultPushWindow).
	PushWindow int
	// RetryMax caps the exponential backoff between push retries (default 5s).
	RetryMax time.Duration
	// DirtyGranularity is the bytes one dirty-bitmap bit covers (default
	// DefaultDirtyGranularity; a power of two, at least 4 KiB).
	DirtyGranularity int64
	// Logger receives the node's logs (nil: slog.Default()).
	Logger *slog.Logger
	// Record, when set, is a folder where the node's metrics are recorded
	// once a second as JSONL (<Record>/<Node>.jsonl, or src.jsonl when Node
	// is not set).
	Record string
	// Registerer receives the node's metrics (nil: a registry of the node's
	// own, served on Metrics).
	Registerer prometheus.Registerer
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	recordName string // the recording's name (set by withDefaults)
}

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.recordName = c.Node
	if c.recordName == "" {
		c.recordName = "src"
	}
	if c.Node == "" {
		h, _ := os.Hostname()
		c.Node = hostNodeName(h)
	}
	c.NBD = orDefault(c.NBD, DefaultNBDAddr)
	c.Push = orDefault(c.Push, DefaultPushAddr)
	c.Control = orDefault(c.Control, DefaultControlAddr)
	c.Metrics = orDefault(c.Metrics, DefaultMetricsAddr)
	if c.PushWindow == 0 {
		c.PushWindow = DefaultPushWindow
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.DirtyGranularity == 0 {
		c.DirtyGranularity = DefaultDirtyGranularity
	}
	if c.Coalesce > 0 && c.FileAge == 0 {
		c.FileAge = c.Coalesce
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// journalFileSize is the payload at which a volume's journal seals its open
// file: the replication file size, or with coalescing its ceiling.
func (c Config) journalFileSize() int64 {
	size := c.FileSize
	if size == 0 {
		size = journal.DefaultMaxFileSize
	}
	if c.Coalesce > 0 {
		size = coalesceCeiling(size)
	}
	return size
}

// coalesceCeiling is the raw payload at which a coalescing volume seals its
// open file: coalesceFileFactor replication file sizes, at most
// CoalesceMaxFile, at least the file size. The sealed file is never larger
// than the raw payload.
func coalesceCeiling(fileSize int64) int64 {
	return max(fileSize, min(coalesceFileFactor*fileSize, CoalesceMaxFile))
}

// hostNodeName turns a host name into a valid node name: its first label,
// other characters replaced by '-', at most 64 characters ("src" if empty).
func hostNodeName(h string) string {
	h, _, _ = strings.Cut(h, ".")
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > journal.MaxNameLen {
		b = b[:journal.MaxNameLen]
	}
	if len(b) == 0 {
		return "src"
	}
	return string(b)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// validate reports the first problem of a populated config.
func (c Config) validate() error {
	if c.Buffer == "" {
		return fmt.Errorf("%w: --buffer is required", ErrConfig)
	}
	if len(c.Volumes) == 0 {
		return fmt.Errorf("%w: at least one --volume is required", ErrConfig)
	}
	if len(c.Volumes) > push.MaxVolumes {
		return fmt.Errorf("%w: %d volumes, at most %d", ErrConfig, len(c.Volumes), push.MaxVolumes)
	}
	if err := journal.ValidName(c.Node); err != nil {
		return fmt.Errorf("%w: node name %q: %w", ErrConfig, c.Node, err)
	}
	if c.Identity == nil {
		return fmt.Errorf("%w: --key DIR is required: this node's identity (make one with aimwan keygen --dir DIR)", ErrConfig)
	}
	if len(c.Pins) == 0 {
		return fmt.Errorf("%w: --peer-fp FP is required: the fingerprint of the next hop (dst or the source-edge proxy) that its aimwan keygen printed", ErrConfig)
	}
	seen, err := c.validateVolumes()
	if err != nil {
		return err
	}
	if err := c.validateGroups(seen); err != nil {
		return err
	}
	if err := c.validateSchedules(seen); err != nil {
		return err
	}
	switch {
	case c.BufferLimit < 0:
		return fmt.Errorf("%w: negative buffer limit %d", ErrConfig, c.BufferLimit)
	case c.FileSize < 0:
		return fmt.Errorf("%w: negative file size %d", ErrConfig, c.FileSize)
	case c.FileAge < 0:
		return fmt.Errorf("%w: negative file age %s", ErrConfig, c.FileAge)
	case c.Coalesce < 0:
		return fmt.Errorf("%w: --coalesce %s: want a window > 0, or 0 for off", ErrConfig, c.Coalesce)
	case c.Coalesce > 0 && c.FileAge != c.Coalesce:
		return fmt.Errorf("%w: --file-age %s and --coalesce %s: with coalescing the window is the file age; give one of them", ErrConfig, c.FileAge, c.Coalesce)
	case c.PushWindow < 1:
		return fmt.Errorf("%w: push window %d, want at least 1", ErrConfig, c.PushWindow)
	case c.NBDMaxConns < 0:
		return fmt.Errorf("%w: negative --max-conns %d", ErrConfig, c.NBDMaxConns)
	case c.RetryMax <= 0:
		return fmt.Errorf("%w: retry cap %s, want > 0", ErrConfig, c.RetryMax)
	case c.DirtyGranularity < 4096 || c.DirtyGranularity&(c.DirtyGranularity-1) != 0:
		return fmt.Errorf("%w: dirty granularity %d, want a power of two >= 4096", ErrConfig, c.DirtyGranularity)
	}
	for _, a := range []struct{ flag, addr string }{{"--nbd", c.NBD}, {"--push", c.Push}, {"--control", c.Control}} {
		if !strings.Contains(a.addr, ":") {
			return fmt.Errorf("%w: %s %q: want host:port", ErrConfig, a.flag, a.addr)
		}
	}
	if c.Metrics != "off" && !strings.Contains(c.Metrics, ":") {
		return fmt.Errorf("%w: --metrics %q: want host:port or off", ErrConfig, c.Metrics)
	}
	return nil
}

// validateVolumes checks the volume list and returns the set of names.
func (c Config) validateVolumes() (map[string]bool, error) {
	seen := map[string]bool{}
	paths := map[string]string{}
	for _, v := range c.Volumes {
		if err := journal.ValidName(v.Name); err != nil {
			return nil, fmt.Errorf("%w: volume name %q: %w", ErrConfig, v.Name, err)
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("%w: volume %q configured twice", ErrConfig, v.Name)
		}
		seen[v.Name] = true
		if v.Path == "" {
			return nil, fmt.Errorf("%w: volume %q: no image path", ErrConfig, v.Name)
		}
		key := filepath.Clean(v.Path) // one image however spelled: two journals for it would corrupt the far end
		if abs, err := filepath.Abs(key); err == nil {
			key = abs
		}
		if other, dup := paths[key]; dup {
			return nil, fmt.Errorf("%w: volumes %q and %q share the image %s", ErrConfig, other, v.Name, v.Path)
		}
		paths[key] = v.Name
		if v.Size < 0 {
			return nil, fmt.Errorf("%w: volume %q: negative size %d", ErrConfig, v.Name, v.Size)
		}
	}
	return seen, nil
}

// validateGroups checks the groups against the volume names.
func (c Config) validateGroups(seen map[string]bool) error {
	groups := map[string]bool{}
	for _, g := range c.Groups {
		if err := journal.ValidName(g.Name); err != nil {
			return fmt.Errorf("%w: group name %q: %w", ErrConfig, g.Name, err)
		}
		if groups[g.Name] || seen[g.Name] {
			return fmt.Errorf("%w: group name %q already used by a group or volume", ErrConfig, g.Name)
		}
		groups[g.Name] = true
		if len(g.Volumes) == 0 {
			return fmt.Errorf("%w: group %q has no volumes", ErrConfig, g.Name)
		}
		members := map[string]bool{}
		for _, m := range g.Volumes {
			if !seen[m] {
				return fmt.Errorf("%w: group %q: unknown volume %q", ErrConfig, g.Name, m)
			}
			if members[m] {
				return fmt.Errorf("%w: group %q lists volume %q twice", ErrConfig, g.Name, m)
			}
			members[m] = true
		}
	}
	return nil
}

// ParseVolume parses a --volume value: NAME=PATH[,size=N] (N with units,
// e.g. 64MiB).
func ParseVolume(s string) (VolumeConfig, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return VolumeConfig{}, fmt.Errorf("%w: --volume %q: want NAME=PATH[,size=N]", ErrConfig, s)
	}
	if err := journal.ValidName(name); err != nil {
		return VolumeConfig{}, fmt.Errorf("%w: --volume %q: name: %w", ErrConfig, s, err)
	}
	parts := strings.Split(rest, ",")
	v := VolumeConfig{Name: name, Path: parts[0]}
	if v.Path == "" {
		return VolumeConfig{}, fmt.Errorf("%w: --volume %q: empty path", ErrConfig, s)
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(p, "=")
		if k != "size" {
			return VolumeConfig{}, fmt.Errorf("%w: --volume %q: unknown option %q (want size=N)", ErrConfig, s, k)
		}
		n, err := units.ParseSize(val)
		if err != nil {
			return VolumeConfig{}, fmt.Errorf("%w: --volume %q: %w", ErrConfig, s, err)
		}
		v.Size = n
	}
	return v, nil
}

// ParseGroup parses a --group value: NAME=VOL,VOL...
func ParseGroup(s string) (GroupConfig, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return GroupConfig{}, fmt.Errorf("%w: --group %q: want NAME=VOL,VOL", ErrConfig, s)
	}
	if err := journal.ValidName(name); err != nil {
		return GroupConfig{}, fmt.Errorf("%w: --group %q: name: %w", ErrConfig, s, err)
	}
	g := GroupConfig{Name: name}
	for _, m := range strings.Split(rest, ",") {
		if err := journal.ValidName(m); err != nil {
			return GroupConfig{}, fmt.Errorf("%w: --group %q: volume %q: %w", ErrConfig, s, m, err)
		}
		g.Volumes = append(g.Volumes, m)
	}
	return g, nil
}

// groupMembers returns the sorted member names of group g: the fixed lock
// order of group markers.
func groupMembers(g GroupConfig) []string {
	m := append([]string(nil), g.Volumes...)
	sort.Strings(m)
	return m
}
