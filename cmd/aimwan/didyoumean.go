package main

import (
	"flag"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// unknownKeysError lists the keys of a YAML configuration that no setting of
// the daemon has, each with its line and, when one is close, the key meant.
type unknownKeysError struct {
	keys []string // `line 3: unknown key "cach" (did you mean "cache"?)`
}

func (e *unknownKeysError) Error() string {
	if len(e.keys) == 1 {
		return e.keys[0]
	}
	return "unknown keys:\n  " + strings.Join(e.keys, "\n  ")
}

// checkYAMLKeys walks the YAML document root beside the Go type of into and
// reports every mapping key that names no field, as the settings are
// spelled in the file (yaml tags), with a suggestion. Types that decode
// themselves (yaml.Unmarshaler) and maps are not looked into, except that a
// map's values are checked against its element type.
func checkYAMLKeys(root *yaml.Node, into any) error {
	var e unknownKeysError
	walkYAMLKeys(root, reflect.TypeOf(into), "", &e)
	if len(e.keys) == 0 {
		return nil
	}
	return &e
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func walkYAMLKeys(n *yaml.Node, t reflect.Type, where string, e *unknownKeysError) {
	if n == nil || t == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkYAMLKeys(c, t, where, e)
		}
		return
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, c := range n.Content {
				walkYAMLKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", where, i), e)
			}
		}
		return
	case yaml.MappingNode:
	default:
		return
	}
	switch t.Kind() {
	case reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			walkYAMLKeys(n.Content[i+1], t.Elem(), where+"."+n.Content[i].Value, e)
		}
	case reflect.Struct:
		fields := yamlFields(t)
		known := make([]string, 0, len(fields))
		for k := range fields {
			known = append(known, k)
		}
		sort.Strings(known)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				e.keys = append(e.keys, unknownKey(k, where, known))
				continue
			}
			walkYAMLKeys(n.Content[i+1], ft, strings.TrimPrefix(where+"."+k.Value, "."), e)
		}
	}
}

// unknownKey describes one unknown key: its line, its place, the key meant.
func unknownKey(k *yaml.Node, where string, known []string) string {
	s := fmt.Sprintf("line %d: unknown key %q", k.Line, k.Value)
	if where != "" {
		s += " in " + strings.TrimPrefix(where, ".")
	}
	if m := closest(k.Value, known); m != "" {
		return s + fmt.Sprintf(" (did you mean %q?)", m)
	}
	return s + " (known keys: " + strings.Join(known, ", ") + ")"
}

// yamlFields maps the keys of struct t, as yaml.v3 names them (tag, else the
// lower-cased field name; ",inline" structs contribute their own), to their
// field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// closest returns the candidate most like s, or "" when none is close
// enough to be the one meant: same up to case, '-' for '_' or a few edits.
func closest(s string, candidates []string) string {
	norm := func(x string) string { return strings.ReplaceAll(strings.ToLower(x), "-", "_") }
	best, bestD := "", 0
	for _, c := range candidates {
		d := editDistance(norm(s), norm(c))
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	limit := 1 // edits allowed: more for longer keys
	switch {
	case len(s) > 8:
		limit = 3
	case len(s) > 3:
		limit = 2
	}
	if best == "" || bestD > limit && !strings.HasPrefix(norm(best), norm(s)) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkFlagNames finds the first flag in args that fs does not define, the
// way fs.Parse would meet it (flags end at the first non-flag argument or
// "--"; a non-boolean flag without "=" takes the next argument), and names
// the flag meant. nil when every flag is defined.
func checkFlagNames(fs *flag.FlagSet, args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' || a == "--" {
			return nil
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, _, hasValue := strings.Cut(name, "=")
		if name == "" || name == "h" || name == "help" || strings.HasPrefix(name, "-") {
			return nil // fs.Parse reports bad syntax and prints the help itself
		}
		f := fs.Lookup(name)
		if f == nil {
			var known []string
			fs.VisitAll(func(f *flag.Flag) { known = append(known, f.Name) })
			msg := "unknown flag --" + name
			if m := closest(name, known); m != "" {
				msg += fmt.Sprintf(" (did you mean --%s?)", m)
			}
			return usagef("%s: %s; see '%s --help'", strings.TrimPrefix(fs.Name(), "aimwan "), msg, fs.Name())
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); (!ok || !b.IsBoolFlag()) && !hasValue {
			i++ // its value
		}
	}
	return nil
}
