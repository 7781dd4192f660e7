package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/aimwan/aimwan/dedupe"
)

// openCache opens the chunk store in dir ("" = memory only) of size bytes
// (0 = dedupe's default). A store that cannot be loaded is moved aside to
// dir.bad and the store starts cold: it is a cache, never needed for
// correctness. This is the one place a proxy opens its cache.
func openCache(dir string, size int64, log *slog.Logger) (*dedupe.Store, error) {
	cfg := dedupe.StoreConfig{Dir: dir, MaxBytes: size, Logger: log}
	store, err := dedupe.OpenStore(cfg)
	if errors.Is(err, dedupe.ErrStoreLoad) && dir != "" {
		log.Warn("chunk store unreadable; moved aside, starting cold", "dir", dir, "moved_to", dir+".bad", "err", err)
		_ = os.RemoveAll(dir + ".bad")
		if rerr := os.Rename(dir, dir+".bad"); rerr != nil {
			return nil, fmt.Errorf("proxy: move unreadable cache aside: %w", rerr)
		}
		store, err = dedupe.OpenStore(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("proxy: cache: %w", err)
	}
	return store, nil
}

// Prime loads the chunks of image into the chunk store in dir (of size
// bytes, 0 = default; use the proxy's own --cache-size) and saves it, so data
// the DR site already holds is never sent. The proxy using dir must be
// stopped.
func Prime(ctx context.Context, dir string, size int64, image io.Reader, log *slog.Logger) (dedupe.PrimeStats, error) {
	if log == nil {
		log = slog.Default()
	}
	store, err := openCache(dir, size, log)
	if err != nil {
		return dedupe.PrimeStats{}, err
	}
	st, err := dedupe.Prime(ctx, store, image, dedupe.Params{})
	if err != nil {
		return st, err
	}
	if err := store.Save(); err != nil {
		return st, fmt.Errorf("save cache: %w", err)
	}
	return st, nil
}
