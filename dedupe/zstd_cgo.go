//go:build cgo

package dedupe

/*
// The libzstd that github.com/DataDog/zstd bundles and builds (v1.5.7, the
// same objects this binary links), called directly: that package's Go API
// builds a new compression context per call (the streaming Writer, or
// ZSTD_compress), which at level 19 mallocs and frees ~100 MB or more of C
// memory for every file. One context, kept, bounds that memory instead.
#include <stddef.h>
typedef struct ZSTD_CCtx_s ZSTD_CCtx;
extern ZSTD_CCtx* ZSTD_createCCtx(void);
extern size_t ZSTD_freeCCtx(ZSTD_CCtx* cctx);
extern size_t ZSTD_CCtx_setParameter(ZSTD_CCtx* cctx, int param, int value);
extern size_t ZSTD_CCtx_refPrefix(ZSTD_CCtx* cctx, const void* prefix, size_t prefixSize);
extern size_t ZSTD_compress2(ZSTD_CCtx* cctx, void* dst, size_t dstCapacity, const void* src, size_t srcSize);
extern size_t ZSTD_compressBound(size_t srcSize);
extern unsigned ZSTD_isError(size_t code);
extern const char* ZSTD_getErrorName(size_t code);
extern size_t ZSTD_sizeof_CCtx(const ZSTD_CCtx* cctx);
extern size_t ZSTD_estimateCCtxSize(int compressionLevel);
extern size_t ZSTD_CCtx_reset(ZSTD_CCtx* cctx, int reset);

// ZSTD_c_compressionLevel (ZSTD_cParameter) and ZSTD_reset_session_and_parameters
// (ZSTD_ResetDirective) in zstd.h.
enum { aimwan_c_compressionLevel = 100, aimwan_reset_session_and_parameters = 3 };

static size_t aimwan_compress_max(ZSTD_CCtx* cctx, int level, void* dst, size_t dstCap,
		const void* src, size_t srcSize, const void* prefix, size_t prefixSize) {
	size_t r = ZSTD_CCtx_setParameter(cctx, aimwan_c_compressionLevel, level);
	if (ZSTD_isError(r)) return r;
	if (prefixSize > 0) {
		r = ZSTD_CCtx_refPrefix(cctx, prefix, prefixSize);
		if (ZSTD_isError(r)) return r;
	}
	r = ZSTD_compress2(cctx, dst, dstCap, src, srcSize);
	if (ZSTD_isError(r)) {
		// Drop the prefix (Go memory) should the failed call have left it
		// referenced; the next call sets the level again.
		ZSTD_CCtx_reset(cctx, aimwan_reset_session_and_parameters);
	}
	return r;
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	_ "github.com/DataDog/zstd" // builds and links the libzstd called above
)

// LevelMax runs the reference zstd library (libzstd, bundled and built by
// github.com/DataDog/zstd through cgo) at level maxCLevel. klauspost's
// pure-Go encoder has no optimal parser (its strongest level is about zstd
// -11): on an OS image its best level leaves 10% more bytes than zstd -19.
// Only the sending edge runs it, when the link is the bottleneck; the
// frames are plain zstd, decoded by the same klauspost decoder as the
// other levels (docs/dedupe.md, "Levels").
const haveMax = true

// maxCLevel is libzstd's level for LevelMax: its strongest regular level
// (19; the "ultra" levels 20-22 need windows beyond the decoder's 8 MiB).
const maxCLevel = 19

// maxCtx is the one libzstd compression context of LevelMax, made on first
// use and kept: its workspace (hash and binary-tree tables sized by the
// level and the input, at most MaxLevelMemory) lives outside the Go heap,
// where GOMEMLIMIT does not see it. A context per call, as the DataDog API
// makes, malloc'ed and freed that much per file, and with a dictionary the
// streaming API also built a level-19 CDict of it (~50 MB more): measured
// in make demo, ~160 MB of C memory beside the Go heap at the source
// edge's peak. One context used under a lock costs MaxLevelMemory at most,
// whatever the number of files or goroutines.
var maxCtx struct {
	sync.Mutex
	c *C.ZSTD_CCtx
}

// MaxLevelMemory bounds the C memory LevelMax uses, in bytes: libzstd's
// own estimate of a level-19 context (ZSTD_estimateCCtxSize, the largest
// over input sizes); 0 without cgo. A process's memory budget reserves it
// (proxy's GOMEMLIMIT).
func MaxLevelMemory() int64 { return int64(C.ZSTD_estimateCCtxSize(C.int(maxCLevel))) }

// maxCtxSize is the C memory the LevelMax context holds now (0 before its
// first use).
func maxCtxSize() int64 {
	maxCtx.Lock()
	defer maxCtx.Unlock()
	if maxCtx.c == nil {
		return 0
	}
	return int64(C.ZSTD_sizeof_CCtx(maxCtx.c))
}

// compressMax compresses lits with libzstd at maxCLevel, with dict (raw
// content, may be empty) as initial history: a prefix (ZSTD_CCtx_refPrefix),
// which libzstd indexes into the context's own tables rather than building
// a dictionary of its own. The frame carries no dictionary id: the decoder
// registers the bases under id 0 too. Calls are serialized on the one
// context (the proxy encodes one file at a time anyway).
func compressMax(lits, dict []byte) ([]byte, error) {
	if len(lits) == 0 {
		return nil, nil
	}
	out := make([]byte, int(C.ZSTD_compressBound(C.size_t(len(lits)))))
	maxCtx.Lock()
	defer maxCtx.Unlock()
	if maxCtx.c == nil {
		if maxCtx.c = C.ZSTD_createCCtx(); maxCtx.c == nil {
			return nil, fmt.Errorf("libzstd level %d: no compression context (out of memory)", maxCLevel)
		}
	}
	var prefix unsafe.Pointer
	if len(dict) > 0 {
		prefix = unsafe.Pointer(&dict[0])
	}
	// cgo pins lits, out and dict for the call; libzstd keeps no pointer
	// to them after it (a prefix is only for the next frame).
	n := C.aimwan_compress_max(maxCtx.c, C.int(maxCLevel), unsafe.Pointer(&out[0]), C.size_t(len(out)),
		unsafe.Pointer(&lits[0]), C.size_t(len(lits)), prefix, C.size_t(len(dict)))
	if C.ZSTD_isError(n) != 0 {
		return nil, fmt.Errorf("libzstd level %d with a %d-byte dictionary: %s", maxCLevel, len(dict), C.GoString(C.ZSTD_getErrorName(n)))
	}
	return out[:int(n)], nil
}
