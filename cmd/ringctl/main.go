// Command ringctl is ringmaster's operator CLI: train a model in one process,
// sample from a trained model, run a whole cluster on this machine, and (with
// a coordinator group) submit, watch and cancel jobs.
//
// Commands are cobra commands, one file per group (cluster.go: the client
// commands; train.go, eval.go, sample.go, local.go). Flags may follow
// positional arguments, and long flags take one dash or two (-preset and
// --preset), as the README and the scripts have always written them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes: 1 for a failed command, 2 for a usage error, 128+n when signal
// n stopped it (after a clean stop): 130 for Ctrl-C, as shells report it.
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalContext is cancelled by SIGINT, SIGTERM or SIGHUP (a closed
// terminal), with the signal as its cause.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		if sig, ok := <-sigs; ok {
			cancel(&signalCause{sig.(syscall.Signal)})
		}
	}()
	return ctx, func() { signal.Stop(sigs); close(sigs); cancel(nil) }
}

type signalCause struct{ sig syscall.Signal }

func (c *signalCause) Error() string { return c.sig.String() }

// run executes one ringctl command line and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(longFlagsWithOneDash(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ie *interruptedError
	if errors.As(err, &ie) {
		fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
		return 128 + int(ie.sig)
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
	var ue *usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitFailure
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ringctl",
		Short: "ringmaster's operator CLI",
		Long: "ringctl trains models in one process (train, eval, sample), runs a whole cluster on\n" +
			"this machine (local), and talks to a coordinator group (submit, status, jobs,\n" +
			"workers, cancel, coordinators; RINGMASTER_COORDINATORS or --coordinators names it).",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddGroup(
		&cobra.Group{ID: "model", Title: "Models in this process:"},
		&cobra.Group{ID: "cluster", Title: "Clusters:"},
	)
	for _, c := range []*cobra.Command{newTrainCmd(), newEvalCmd(), newSampleCmd(), newExportCmd(), newTokenizerCmd(), newDataCmd()} {
		c.GroupID = "model"
		root.AddCommand(c)
	}
	for _, c := range append([]*cobra.Command{newLocalCmd(), newCertsCmd(), newCkptCmd()}, clusterCommands()...) {
		c.GroupID = "cluster"
		root.AddCommand(c)
	}
	return root
}

// usageError is a command line ringctl cannot run (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

// interruptedError is a command stopped by a signal after a clean stop
// (exit 128+signal).
type interruptedError struct {
	msg string
	sig syscall.Signal
}

func (e *interruptedError) Error() string { return e.msg }

// interrupted reports that ctx's signal stopped the command (Ctrl-C when
// ctx ended some other way).
func interrupted(ctx context.Context, msg string) error {
	sig := syscall.SIGINT
	var sc *signalCause
	if errors.As(context.Cause(ctx), &sc) {
		sig = sc.sig
	}
	return &interruptedError{msg: msg, sig: sig}
}

// noArgs, exactArgs and maxArgs are cobra's argument checks returning usage errors.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (%s takes flags only)", args[0], cmd.CommandPath())
	}
	return nil
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("want %d argument(s), got %d; usage: %s", n, len(args), cmd.UseLine())
		}
		return nil
	}
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("want at most %d argument(s), got %d; usage: %s", n, len(args), cmd.UseLine())
		}
		return nil
	}
}

// longFlagsWithOneDash rewrites -name and -name=value to --name... when name
// is a long flag of the command the arguments select, so the Go-flag style
// the README, scripts and deployments use keeps working under pflag. A flag's
// value (the argument after a non-boolean flag) and anything after "--" stay
// as they are.
func longFlagsWithOneDash(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		cmd = root
	}
	lookup := func(name string) *pflag.Flag {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	out := make([]string, 0, len(args))
	valueNext := false
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if valueNext {
			out = append(out, a)
			valueNext = false
			continue
		}
		if strings.HasPrefix(a, "--") || !strings.HasPrefix(a, "-") || len(a) < 2 {
			if strings.HasPrefix(a, "--") && !strings.Contains(a, "=") {
				if f := lookup(a[2:]); f != nil && f.NoOptDefVal == "" {
					valueNext = true
				}
			}
			out = append(out, a)
			continue
		}
		name, _, hasValue := strings.Cut(a[1:], "=")
		f := lookup(name)
		if f == nil && name != "help" {
			out = append(out, a)
			continue
		}
		out = append(out, "-"+a)
		valueNext = f != nil && !hasValue && f.NoOptDefVal == ""
	}
	return out
}
