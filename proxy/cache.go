package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/internal/units"
)

// openCache opens the chunk store in dir, of capacity size bytes of disk
// (0 = dedupe's default: half the free space of its file system, at most
// 32 GiB). Without dir the store lives in a private temporary folder that
// the returned close function removes. A store that cannot be loaded is
// moved aside to dir.bad and the store starts cold: it is a cache, never
// needed for correctness; one locked by another process is an error. This
// is the one place a proxy opens its cache; call the close function once
// nothing uses the store any more.
func openCache(dir string, size int64, log *slog.Logger) (*dedupe.Store, func(), error) {
	temp := dir == ""
	if temp {
		removeStaleTempCaches(log)
		var err error
		if dir, err = os.MkdirTemp("", tempCachePrefix); err != nil {
			return nil, nil, fmt.Errorf("proxy: cache: %w", err)
		}
		log.Info("no --cache folder: the chunk store lives in a temporary folder until the proxy stops", "dir", dir)
	}
	cfg := dedupe.StoreConfig{Dir: dir, MaxBytes: size, Logger: log}
	store, err := dedupe.OpenStore(cfg)
	if errors.Is(err, dedupe.ErrStoreLoad) {
		log.Warn("chunk store unreadable; moved aside, starting cold", "dir", dir, "moved_to", dir+".bad", "err", err)
		_ = os.RemoveAll(dir + ".bad")
		if rerr := os.Rename(dir, dir+".bad"); rerr != nil {
			return nil, nil, fmt.Errorf("proxy: move unreadable cache aside: %w", rerr)
		}
		store, err = dedupe.OpenStore(cfg)
	}
	if err != nil {
		if temp {
			_ = os.RemoveAll(dir)
		}
		return nil, nil, fmt.Errorf("proxy: cache: %w", err)
	}
	st := store.Stats()
	log.Info("chunk store", "dir", dir, "capacity", units.FormatSize(int64(st.Capacity)),
		"holds", units.FormatSize(int64(st.Bytes)), "chunks", st.Chunks)
	closeFn := func() {
		if err := store.Close(); err != nil {
			log.Warn("closing the chunk store", "dir", dir, "err", err)
		}
		if temp {
			_ = os.RemoveAll(dir)
		}
	}
	return store, closeFn, nil
}

// tempCachePrefix names the temporary stores of proxies run without --cache.
const tempCachePrefix = "aimwan-cache-"

// removeStaleTempCaches removes the temporary stores that a proxy killed
// with SIGKILL left behind: older than a minute and not locked by a
// running proxy.
func removeStaleTempCaches(log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempCachePrefix+"*"))
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() || time.Since(st.ModTime()) < time.Minute {
			continue
		}
		f, err := os.OpenFile(filepath.Join(d, "lock"), os.O_RDWR, 0)
		if err == nil {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			f.Close()
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue // in use (or not ours to judge)
		}
		log.Info("removing the temporary chunk store of a proxy that did not stop cleanly", "dir", d)
		_ = os.RemoveAll(d)
	}
}

// Prime loads the chunks of image into the chunk store in dir (of size
// bytes, 0 = default; use the proxy's own --cache-size) and closes it
// (durable), so data the DR site already holds is never sent. progress,
// if set, is called every 8 MiB read. The proxy using dir must be stopped
// (its folder is locked: dedupe.ErrStoreBusy).
func Prime(ctx context.Context, dir string, size int64, image io.Reader, log *slog.Logger,
	progress func(dedupe.PrimeStats)) (dedupe.PrimeStats, error) {
	if log == nil {
		log = slog.Default()
	}
	if dir == "" {
		return dedupe.PrimeStats{}, errors.New("proxy: prime: no cache folder")
	}
	store, closeStore, err := openCache(dir, size, log)
	if err != nil {
		return dedupe.PrimeStats{}, err
	}
	st, err := dedupe.PrimeWith(ctx, store, image, dedupe.PrimeOptions{Progress: progress})
	if err != nil {
		closeStore()
		return st, err
	}
	if err := store.Close(); err != nil {
		return st, fmt.Errorf("save cache: %w", err)
	}
	closeStore() // closing twice is a no-op
	return st, nil
}
