// Command aimwan is the one binary of the aimwan replication chain: the source
// node, the edge proxies, the destination node, the simulator, the bench and
// the reports, as subcommands. It is thin: flags and configuration in, the
// packages do the work, and errors are mapped to exit codes here only.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/aimwan/aimwan/internal/version"
)

// Exit codes, set in one place (exitCode).
const (
	exitOK       = 0
	exitFailure  = 1 // the command ran and failed, or found a difference (verify)
	exitUsage    = 2 // bad flags, arguments or configuration
	exitCanceled = 130
)

// command is one subcommand of aimwan.
type command struct {
	Name    string                                         // word after "aimwan"
	Summary string                                         // one line for the help listing
	Run     func(ctx context.Context, args []string) error // args exclude the command name
}

var commands = map[string]command{}

// register adds a subcommand; each cmd/aimwan/<name>.go calls it from init.
func register(c command) {
	if _, dup := commands[c.Name]; dup {
		panic("aimwan: command registered twice: " + c.Name)
	}
	commands[c.Name] = c
}

// usageError marks an error in how the command was called (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message; like fmt.Errorf, a
// %w verb keeps the cause reachable with errors.Is/As.
func usagef(format string, a ...any) error { return &usageError{err: fmt.Errorf(format, a...)} }

// silentFailure is returned by commands that already printed their verdict
// (such as verify finding a difference) and only need a non-zero exit.
var silentFailure = errors.New("failed")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	code := exitCode(err)
	if err != nil && code != exitOK && !errors.Is(err, silentFailure) && code != exitCanceled {
		fmt.Fprintln(os.Stderr, "aimwan:", err)
	}
	os.Exit(code)
}

// run dispatches args to a subcommand.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(stdout)
		if len(args) == 0 {
			return usagef("no command given")
		}
		return nil
	}
	if a := args[0]; a == "version" || a == "--version" || a == "-version" {
		if len(args) > 1 {
			return usagef("%s takes no arguments", a)
		}
		fmt.Fprintln(stdout, version.Get())
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		return usagef("unknown command %q (see 'aimwan --help')", args[0])
	}
	return c.Run(ctx, args[1:])
}

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitCanceled
	default:
		return exitFailure
	}
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "aimwan: WAN-optimized asynchronous replication (source node, edge proxies, destination node).")
	fmt.Fprintln(w, "\nUsage: aimwan COMMAND [flags]   (aimwan COMMAND --help for its flags)\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintf(w, "  %-9s %s\n", "version", "print the version, VCS revision and Go version (also --version)")
	fmt.Fprintln(w, "\nDocs: docs/ in the source tree. Every daemon takes --config FILE (YAML); flags override it.")
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
