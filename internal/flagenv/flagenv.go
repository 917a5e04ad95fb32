// Package flagenv fills command-line flags from RINGMASTER_* environment
// variables, so every binary can be configured by flags or by env
// (containers, Kubernetes ConfigMaps) the same way.
package flagenv

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Key is the environment variable for a flag: RINGMASTER_ + the flag name
// upper-cased with dashes as underscores (--worker-timeout →
// RINGMASTER_WORKER_TIMEOUT).
func Key(flagName string) string {
	return "RINGMASTER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Apply sets every flag of fs that was not given on the command line from
// its environment variable, when that is set. A flag given explicitly wins.
func Apply(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		key := Key(f.Name)
		if v, ok := os.LookupEnv(key); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", key, v, e)
			}
		}
	})
	return err
}
