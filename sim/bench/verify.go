package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/testkit/procs"
)

// fileSHA256 hashes the first size bytes of path; a shorter file is an
// error (its missing tail cannot equal the source).
func fileSHA256(path string, size int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Size() != size {
		return "", fmt.Errorf("%s: %d bytes, want %d", path, st.Size(), size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verify checks every volume: the source and destination images have the
// SHA-256 of the clone as written, and `aimwan verify` says the two are
// identical. Daemons must be stopped.
func verify(ctx context.Context, c *chain, imgs []*image) ([]VolumeResult, bool) {
	all := true
	var out []VolumeResult
	for i, v := range c.vols {
		im := imgs[i]
		r := VolumeResult{Name: v.name, Image: im.label, Bytes: v.size, SHA256: hex.EncodeToString(im.sha[:])}
		var err error
		if r.SrcSHA256, err = fileSHA256(v.srcPath, v.size); err != nil {
			r.SrcSHA256 = "error: " + err.Error()
		}
		if r.DstSHA256, err = fileSHA256(v.dstPath, v.size); err != nil {
			r.DstSHA256 = "error: " + err.Error()
		}
		out2, err := procs.Run(ctx, c.cfg.Bin, 10*time.Minute, "verify", v.srcPath, v.dstPath)
		r.Verify = "identical"
		if err != nil {
			r.Verify = strings.TrimSpace(firstLine(out2 + " " + err.Error()))
		}
		r.Equal = err == nil && r.SrcSHA256 == r.SHA256 && r.DstSHA256 == r.SHA256
		all = all && r.Equal
		out = append(out, r)
	}
	return out, all && len(out) > 0
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
