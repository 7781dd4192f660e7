package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// loadYAML reads the YAML file at path into into. Unknown keys are an error
// naming each key, its line and the setting probably meant, so a misspelt
// setting is reported instead of silently ignored. An empty
// path loads nothing: every setting has a default.
func loadYAML(path string, into any) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return usagef("read config: %v", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return usagef("config %s: %v", path, err)
	}
	if err := checkYAMLKeys(&root, into); err != nil {
		return usagef("config %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // the check above names keys; this keeps any it missed an error
	if err := dec.Decode(into); err != nil && err != io.EOF {
		return usagef("config %s: %v", path, err)
	}
	return nil
}

// newFlagSet returns a flag set that reports errors instead of exiting, so
// main maps them to the usage exit code.
func newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("aimwan "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: aimwan %s %s\n\nFlags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs; a parse error becomes a usageError (an
// unknown flag named with the flag probably meant) and --help becomes a
// clean exit. List flags (multiFlag) take space-separated values too: see
// expandLists.
func parseFlags(fs *flag.FlagSet, args []string) error {
	args = expandLists(fs, args)
	if err := checkFlagNames(fs, args); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errHelpShown
		}
		return usagef("%v", err)
	}
	return nil
}

// errHelpShown ends a command after it printed its --help text.
var errHelpShown = &helpShown{}

type helpShown struct{}

func (*helpShown) Error() string { return "help shown" }

// expandLists lets every list flag (a multiFlag: --images, --volume,
// --peer-fp...) take several values after it, separated by spaces, as users
// write them: "--images a b c --out d" is read as "--images a --images b
// --images c --out d". The words after a list flag's value belong to it
// until the next flag or "--"; repeating the flag keeps working. Flag
// package rules are otherwise unchanged: a flag's value is the next word
// unless given with "=" (booleans take none), and the first word that is
// not a flag's value and not after a list flag ends the flags.
func expandLists(fs *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	list := "" // the list flag bare words are added to
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			if list != "" && a != "--" {
				out = append(out, "--"+list, a)
				continue
			}
			return append(out, args[i:]...)
		}
		out = append(out, a)
		list = ""
		name, hasValue := strings.TrimLeft(a, "-"), false
		if j := strings.IndexByte(name, '='); j >= 0 {
			name, hasValue = name[:j], true
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // the flag package reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && b.IsBoolFlag()) && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
		if _, ok := f.Value.(*multiFlag); ok {
			list = name
		}
	}
	return out
}

// multiFlag collects a repeatable flag (--volume A=... --volume B=...).
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// flagWasSet reports whether the named flag was given on the command line, so
// flags override the YAML file only when present.
func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
