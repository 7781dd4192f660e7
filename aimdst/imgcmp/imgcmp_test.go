package imgcmp

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestReaders(t *testing.T) {
	base := bytes.Repeat([]byte{7}, 3<<20)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(base)) }
	cases := []struct {
		name   string
		b      []byte
		max    int
		ranges []Range
		more   bool
	}{
		{"equal", base, 10, nil, false},
		{"one byte", mod(func(b []byte) []byte { b[5] = 0; return b }), 10, []Range{{5, 1}}, false},
		{"merged nearby", mod(func(b []byte) []byte { b[10], b[100] = 0, 0; return b }), 10, []Range{{10, 91}}, false},
		{"across blocks", mod(func(b []byte) []byte { clear(b[1<<20-2 : 1<<20+2]); return b }), 10, []Range{{1<<20 - 2, 4}}, false},
		{"separate, limited", mod(func(b []byte) []byte { b[0], b[1<<20], b[2<<20] = 0, 0, 0; return b }), 2,
			[]Range{{0, 1}, {1 << 20, 1}}, true},
		{"shorter", base[:1<<20], 10, []Range{{1 << 20, 2 << 20}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Readers(bytes.NewReader(base), int64(len(base)), bytes.NewReader(tc.b), int64(len(tc.b)), tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Ranges, tc.ranges) || res.More != tc.more || res.Equal != (tc.ranges == nil) {
				t.Fatalf("got %+v more %v equal %v, want %+v more %v", res.Ranges, res.More, res.Equal, tc.ranges, tc.more)
			}
		})
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("hello world"), 0o644)
	os.WriteFile(b, []byte("hello World"), 0o644)
	res, err := Files(a, b, 5)
	if err != nil {
		t.Fatal(err)
	}
	if res.Equal || len(res.Ranges) != 1 || res.Ranges[0] != (Range{6, 1}) {
		t.Fatalf("%+v", res)
	}
	if _, err := Files(a, filepath.Join(dir, "missing"), 5); err == nil {
		t.Fatal("missing file compared without error")
	}
}
