package chaos

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Fault kinds, as named in the report.
const (
	KillSrc       = "kill-src"        // SIGKILL of src mid-batch, restart, the batch written again
	KillSrcProxy  = "kill-proxy-src"  // SIGKILL of the source-edge proxy, restart
	KillDstProxy  = "kill-proxy-dst"  // SIGKILL of the destination-edge proxy, restart
	KillDst       = "kill-dst"        // SIGKILL of dst (mid-receive, mid-destage, mid-snapshot), restart
	KillAll       = "kill-all"        // SIGKILL of every daemon at once (both sites lose power), restart all
	WipeCache     = "wipe-cache"      // destination-edge proxy stopped, its chunk cache removed, restarted
	LinkOutage    = "link-outage"     // the WAN passes nothing for a while
	LinkLoss      = "link-loss"       // 5% packet loss for a while (needs the link simulator)
	LinkReorder   = "link-reorder"    // reordering for a while (needs the link simulator)
	LinkDuplicate = "link-dup"        // duplication for a while (needs the link simulator)
	DstReadOnly   = "dst-readonly"    // destination volumes immutable for a while (needs chattr)
	DstMissing    = "dst-volume-gone" // destination volume files moved away for a while (dst offline)
	DstBufferFull = "dst-buffer-full" // dst restarted with a tiny buffer limit: it refuses files, src retries
	DstDiskFull   = "dst-disk-full"   // the file system of dst's buffer filled up to ~64 KiB for a while (needs a tmpfs mount)
	SrcBufferFull = "src-buffer-full" // src restarted with a tiny buffer limit: pull-ahead, dirty bitmap, resync
)

// AllFaults lists every fault kind.
var AllFaults = []string{KillSrc, KillSrcProxy, KillDstProxy, KillDst, KillAll, WipeCache, LinkOutage, LinkLoss,
	LinkReorder, LinkDuplicate, DstReadOnly, DstMissing, DstBufferFull, DstDiskFull, SrcBufferFull}

// killsSrc reports whether a fault kind kills src (the batch under it is
// written again, NBD connections are made anew).
func killsSrc(kind string) bool { return kind == KillSrc || kind == KillAll }

// proxyFaults need the proxies.
var proxyFaults = []string{KillSrcProxy, KillDstProxy, WipeCache}

// linkFaults need the link simulator.
var linkFaults = []string{LinkLoss, LinkReorder, LinkDuplicate}

// linkFlags are the `aimwan sim link` flags (either spelling) behind each
// link fault.
var linkFlags = map[string][]string{LinkLoss: {"loss"}, LinkReorder: {"reorder"}, LinkDuplicate: {"dup", "duplicate"}}

// linkFlag returns the flag of a link fault the simulator has ("" if none).
func linkFlag(kind string, have map[string]bool) string {
	for _, f := range linkFlags[kind] {
		if have[f] {
			return f
		}
	}
	return ""
}

// ErrConfig is wrapped by configuration errors.
var ErrConfig = errors.New("chaos: bad configuration")

// Config is a chaos run. The zero value of every field but Bin is a default.
type Config struct {
	// Bin is the aimwan binary that runs the daemons (required).
	Bin string
	// Dir is the work folder (volumes, buffers, logs, report); default: a new
	// temp folder.
	Dir string
	// Rounds is the number of rounds (default 3).
	Rounds int
	// Seed makes the run reproducible: data, fault kinds, trigger points and
	// timings come from it.
	Seed uint64
	// FaultsPerRound is the number of faults (and batches) per round
	// (default 4).
	FaultsPerRound int
	// Duration bounds the whole run: no round starts after it (default: none).
	Duration time.Duration
	// VolumeSize is the size of each of the two volumes (default 4 MiB).
	VolumeSize int64
	// WritesPerBatch is the most requests in one batch (default 24).
	WritesPerBatch int
	// MaxWrite is the largest write (default 128 KiB).
	MaxWrite int
	// DrainTimeout bounds the drain at the end of a round (default 120 s).
	DrainTimeout time.Duration
	// Faults are the kinds to inject (default: every kind this machine
	// supports: link faults need `aimwan sim link`, dst-readonly needs chattr,
	// dst-disk-full needs to mount a tmpfs, as root).
	Faults []string
	// Mode is the proxies' mode: optimize (default) or passthrough.
	Mode string
	// Link is "auto" (default: use `aimwan sim link` when the binary has it),
	// "on" (require it) or "off" (proxies talk directly).
	Link string
	// Direct makes src push straight to dst: no proxies, no link (the
	// unoptimized baseline path). Proxy, cache and link-impairment faults
	// are left out; link-outage freezes dst.
	Direct bool
	// Coalesce, when > 0, runs src with `--coalesce` of this window (write
	// coalescing at journal sealing) instead of its short file age, so
	// kills land in coalesced seals and their recovery too.
	Coalesce time.Duration
	// LinkNoise keeps the link simulator mildly impaired all the time (1%
	// loss, 2% reordering, 2% duplication) on top of the faults.
	LinkNoise bool
	// Logger receives progress (nil: slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if c.FaultsPerRound == 0 {
		c.FaultsPerRound = 4
	}
	if c.VolumeSize == 0 {
		c.VolumeSize = 4 << 20
	}
	if c.WritesPerBatch == 0 {
		c.WritesPerBatch = 24
	}
	if c.MaxWrite == 0 {
		c.MaxWrite = 128 << 10
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 120 * time.Second
	}
	if c.Mode == "" {
		c.Mode = "optimize"
	}
	if c.Link == "" {
		c.Link = "auto"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

const blockSize = 4096

func (c Config) validate() error {
	switch {
	case c.Bin == "":
		return fmt.Errorf("%w: no aimwan binary given", ErrConfig)
	case c.Rounds < 1 || c.Rounds > 100000:
		return fmt.Errorf("%w: rounds %d out of range 1..100000", ErrConfig, c.Rounds)
	case c.FaultsPerRound < 0 || c.FaultsPerRound > 1000:
		return fmt.Errorf("%w: faults per round %d out of range 0..1000", ErrConfig, c.FaultsPerRound)
	case c.VolumeSize < 1<<20 || c.VolumeSize > 1<<30 || c.VolumeSize%blockSize != 0:
		return fmt.Errorf("%w: volume size %d: want a multiple of 4 KiB in 1 MiB..1 GiB", ErrConfig, c.VolumeSize)
	case c.WritesPerBatch < 1 || c.WritesPerBatch > 10000:
		return fmt.Errorf("%w: writes per batch %d out of range 1..10000", ErrConfig, c.WritesPerBatch)
	case c.MaxWrite < blockSize || c.MaxWrite > 4<<20 || int64(c.MaxWrite) > c.VolumeSize:
		return fmt.Errorf("%w: max write %d: want 4 KiB..min(4 MiB, volume size)", ErrConfig, c.MaxWrite)
	case c.DrainTimeout < time.Second:
		return fmt.Errorf("%w: drain timeout %v: want at least 1s", ErrConfig, c.DrainTimeout)
	case c.Coalesce < 0 || c.Coalesce > time.Minute:
		return fmt.Errorf("%w: coalesce window %v: want 0 (off) .. 1m", ErrConfig, c.Coalesce)
	case c.Mode != "optimize" && c.Mode != "passthrough":
		return fmt.Errorf("%w: mode %q: want optimize or passthrough", ErrConfig, c.Mode)
	case c.Link != "auto" && c.Link != "on" && c.Link != "off":
		return fmt.Errorf("%w: link %q: want auto, on or off", ErrConfig, c.Link)
	case c.Duration < 0:
		return fmt.Errorf("%w: negative duration %v", ErrConfig, c.Duration)
	}
	for _, f := range c.Faults {
		if !slices.Contains(AllFaults, f) {
			return fmt.Errorf("%w: unknown fault kind %q (known: %v)", ErrConfig, f, AllFaults)
		}
	}
	return nil
}
