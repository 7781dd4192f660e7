package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/aimwan/aimwan/transport/identity"
)

func init() {
	register(command{Name: "keygen", Summary: "make a node identity (cert+key) for src, dst or a proxy; prints its fingerprint",
		Run: func(ctx context.Context, args []string) error { return runKeygen(args, os.Stdout) }})
}

// runKeygen creates the identity in --dir, or shows the one already there.
// The fingerprint is the last word of the output, so scripts can take it
// with `awk '{print $NF}'`.
func runKeygen(args []string, out io.Writer) error {
	flags := newFlagSet("keygen", "--dir DIR")
	dir := flags.String("dir", "", "identity `DIR` (created; cert.pem and key.pem, mode 0600)")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usagef("keygen: unexpected argument %q", flags.Arg(0))
	}
	if *dir == "" {
		return usagef("keygen: --dir DIR is required")
	}
	id, err := identity.Generate(*dir)
	if errors.Is(err, fs.ErrExist) {
		if id, err = identity.Load(*dir); err != nil {
			return err
		}
		fmt.Fprintf(out, "identity already in %s (kept); fingerprint: %s\n", *dir, id.Fingerprint)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "identity written to %s; pin this fingerprint at the node's peers (--peer-fp; --lan-peer-fp at a proxy): %s\n", *dir, id.Fingerprint)
	return nil
}
