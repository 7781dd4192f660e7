package main

import (
	"flag"

	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/transport/identity"
)

// loadKey loads the node identity in dir (--key). A daemon without one does
// not start: aimwan never pushes in plaintext, and an identity it made on
// its own in a state folder would change whenever that folder is wiped
// (docs/deployment.md, "Keys and pins").
func loadKey(daemon, dir string) (*identity.Identity, error) {
	if dir == "" {
		return nil, usagef("%s: --key DIR is required: this node's identity, made once with aimwan keygen --dir DIR "+
			"(every push leg is mutual TLS; see docs/deployment.md)", daemon)
	}
	id, err := identity.Load(dir)
	if err != nil {
		return nil, usagef("%s: %v", daemon, err)
	}
	return id, nil
}

// loadPins parses the fingerprints of flag (--peer-fp, --lan-peer-fp); at
// least one is required, peer says whose.
func loadPins(daemon, flagName, peer string, values []string) (identity.Pins, error) {
	pins, err := identity.ParsePins("--"+flagName, values)
	if err != nil {
		return nil, usagef("%s: %v", daemon, err)
	}
	if len(pins) == 0 {
		return nil, usagef("%s: --%s FP is required: the fingerprint of %s, printed by its aimwan keygen", daemon, flagName, peer)
	}
	return pins, nil
}

// fpFlags collects a repeatable fingerprint flag: several values, each may
// hold a comma-separated list.
func fpFlag(fs *flag.FlagSet, name, usage string) *multiFlag {
	var m multiFlag
	fs.Var(&m, name, usage)
	return &m
}

// controlTarget is how a client subcommand finds a daemon's control API and
// its token: --control ADDR, and --token FILE, or the node's --buffer DIR,
// or its --config FILE (which gives both).
type controlTarget struct {
	fs                     *flag.FlagSet
	control, token, buffer *string
	config                 *string
	def                    string
}

func addControlFlags(fs *flag.FlagSet, def, node string) *controlTarget {
	return &controlTarget{fs: fs, def: def,
		control: fs.String("control", def, "control API `ADDR` of the "+node),
		token:   fs.String("token", "", "the API token `FILE` the node wrote at start (default: <buffer>/"+ctlapi.TokenFile+")"),
		buffer:  fs.String("buffer", "", "the node's buffer `DIR`, where it keeps its token"),
		config:  fs.String("config", "", "the node's YAML config `file` (gives its control address and buffer)"),
	}
}

// resolve returns the control address and the token file. load reads the
// node's YAML (its control address and buffer).
func (c *controlTarget) resolve(cmd string, load func(path string) (control, buffer string, err error)) (string, string, error) {
	addr, buffer := *c.control, *c.buffer
	if *c.config != "" {
		ctl, buf, err := load(*c.config)
		if err != nil {
			return "", "", err
		}
		if ctl != "" && !flagWasSet(c.fs, "control") {
			addr = ctl
		}
		if buffer == "" {
			buffer = buf
		}
	}
	switch {
	case *c.token != "":
		return addr, *c.token, nil
	case buffer != "":
		return addr, ctlapi.TokenPath(buffer), nil
	}
	return "", "", usagef("%s: the control API needs the node's token: give --buffer DIR (the node's buffer), "+
		"--config FILE (its YAML) or --token FILE", cmd)
}
