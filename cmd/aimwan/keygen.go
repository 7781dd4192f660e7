package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/aimwan/aimwan/transport"
)

func init() {
	register(command{Name: "keygen", Summary: "make a node identity (cert+key) for the WAN proxies; prints its fingerprint",
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
	id, err := transport.GenerateIdentity(*dir)
	if errors.Is(err, fs.ErrExist) {
		if id, err = transport.LoadIdentity(*dir); err != nil {
			return err
		}
		fmt.Fprintf(out, "identity already in %s (kept); fingerprint: %s\n", *dir, id.Fingerprint)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "identity written to %s; give this fingerprint to the peer proxy (--peer-fp): %s\n", *dir, id.Fingerprint)
	return nil
}
