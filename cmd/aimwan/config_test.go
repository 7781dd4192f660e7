package main

import (
	"reflect"
	"testing"
)

func TestListFlags(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		items []string // the list flag's values
		out   string
		pos   []string // positional arguments left
		fail  bool
	}{
		{"space separated", []string{"--items", "a", "b", "c"}, []string{"a", "b", "c"}, "", nil, false},
		{"then a flag", []string{"--items", "a", "b", "--out", "d"}, []string{"a", "b"}, "d", nil, false},
		{"flag first", []string{"--out", "d", "--items", "a", "b"}, []string{"a", "b"}, "d", nil, false},
		{"repeated", []string{"--items", "a", "--items", "b", "c"}, []string{"a", "b", "c"}, "", nil, false},
		{"equals", []string{"--items=a", "b", "-out=d"}, []string{"a", "b"}, "d", nil, false},
		{"single dash", []string{"-items", "a", "b"}, []string{"a", "b"}, "", nil, false},
		{"boolean ends the list", []string{"--items", "a", "--quiet", "b"}, []string{"a"}, "", []string{"b"}, false},
		{"double dash ends the list", []string{"--items", "a", "--", "b"}, []string{"a"}, "", []string{"b"}, false},
		{"after a plain flag: positional", []string{"--out", "d", "x", "--items", "a"}, nil, "d", []string{"x", "--items", "a"}, false},
		{"value that looks like a flag", []string{"--out", "--items", "a"}, nil, "--items", []string{"a"}, false},
		{"missing value", []string{"--items"}, nil, "", nil, true},
		{"unknown flag", []string{"--items", "a", "--nope", "b"}, nil, "", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("test", "")
			fs.SetOutput(nopWriter{})
			var items multiFlag
			fs.Var(&items, "items", "")
			out := fs.String("out", "", "")
			fs.Bool("quiet", false, "")
			err := parseFlags(fs, tc.args)
			if (err != nil) != tc.fail {
				t.Fatalf("err %v, want failure %v", err, tc.fail)
			}
			if tc.fail {
				return
			}
			if !reflect.DeepEqual([]string(items), tc.items) || *out != tc.out || !reflect.DeepEqual(fs.Args(), append([]string{}, tc.pos...)) {
				t.Errorf("items %q out %q args %q; want %q %q %q", items, *out, fs.Args(), tc.items, tc.out, tc.pos)
			}
		})
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
