package main

import "context"

// command is one ringctl subcommand: a one-line summary for the usage text
// and a run function that parses its own flags from args.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}
