// Command ringctl is ringmaster's operator CLI: train a model in one process,
// sample from a trained model, and (with a coordinator group) submit, watch
// and cancel jobs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func commands() map[string]command {
	cmds := map[string]command{
		"train":  {"train a model in this process (default: the built-in sort job)", runTrain},
		"sample": {"generate from a model saved by train", runSample},
		"eval":   {"evaluate a model saved by train (loss, accuracy, held-out score)", runEval},
		"local":  {"run a whole cluster on this machine (3 coordinators, N workers) and train a job on it", runLocal},
	}
	maps.Copy(cmds, clusterCommands())
	return cmds
}

func run(ctx context.Context, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(cmds)
		return 2
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "ringctl: unknown command %q\n\n", args[0])
		usage(cmds)
		return 2
	}
	if err := cmd.run(ctx, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(os.Stderr, "ringctl %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(cmds map[string]command) {
	fmt.Fprintln(os.Stderr, "usage: ringctl <command> [flags]\n\ncommands:")
	for _, name := range slices.Sorted(maps.Keys(cmds)) {
		fmt.Fprintf(os.Stderr, "  %-13s %s\n", name, cmds[name].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun `ringctl <command> -h` for a command's flags.")
}
