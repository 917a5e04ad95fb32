// Package tlsflags is the binaries' shared TLS flags (--tls-dir,
// --tls-name, --insecure) and the one place that turns them into a
// tlsauth.Source that reloads on SIGHUP and on file change.
package tlsflags

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
)

// Flags are the TLS flags of one binary.
type Flags struct {
	Dir      *string
	Name     *string
	Insecure *bool
}

// Register adds --tls-dir, --tls-name and --insecure to fs.
func Register(fs *flag.FlagSet) *Flags {
	return &Flags{
		Dir:      fs.String("tls-dir", "", "directory with ca.crt and this node's <name>.crt/<name>.key (`ringctl certs init|issue`); mutual TLS on every connection"),
		Name:     fs.String("tls-name", "", "certificate file name in --tls-dir (default: the node id)"),
		Insecure: fs.Bool("insecure", false, "run without TLS: anyone who reaches a port is trusted (development only)"),
	}
}

// Load returns the node's Source (nil, with a warning, without --tls-dir
// or with --insecure). The Source
// reloads on SIGHUP and when its files change, until ctx ends.
func (f *Flags) Load(ctx context.Context, defName string, log *slog.Logger) (*tlsauth.Source, error) {
	switch {
	case *f.Insecure && *f.Dir != "":
		return nil, errors.New("--insecure and --tls-dir: give one")
	case *f.Insecure || *f.Dir == "":
		log.Warn("running WITHOUT TLS (no --tls-dir): any process that reaches this node's ports is trusted; give --tls-dir for mutual TLS")
		return nil, nil
	}
	name := *f.Name
	if name == "" {
		name = defName
	}
	src, err := tlsauth.Load(tlsauth.InDir(*f.Dir, name), log)
	if err != nil {
		return nil, err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() { // owned by ctx
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := src.Reload(); err != nil {
					log.Warn("SIGHUP: certificates do not load; keeping the current ones", "err", err)
				}
			}
		}
	}()
	go src.Watch(ctx, 5*time.Second)
	log.Info("mutual TLS on", "identity", src.Identity().String(), "not_after", src.NotAfter().Format(time.RFC3339))
	return src, nil
}
