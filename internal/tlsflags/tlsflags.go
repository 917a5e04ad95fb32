// Package tlsflags is the binaries' shared TLS flags (--tls-dir,
// --tls-name, --insecure) and the one place that turns them into a
// tlsauth.Source that reloads on SIGHUP and on file change.
package tlsflags

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
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
		Name:     fs.String("tls-name", "", "certificate file name in --tls-dir (default: the node id); a pattern such as 'worker-*' claims the first matching certificate no other process on this host holds"),
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
	if strings.ContainsAny(name, "*?[") {
		claimed, held, err := Claim(*f.Dir, name)
		if err != nil {
			return nil, err
		}
		go func() { // holds the claim (and its file) until ctx ends
			<-ctx.Done()
			held.Close()
		}()
		log.Info("claimed a certificate from the pool", "pattern", name, "name", claimed)
		name = claimed
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

// Claim picks a certificate from a pool: the first NAME.crt in dir whose
// NAME matches pattern (path.Match syntax) and that no other process holds,
// and holds it until the returned file is closed (an exclusive flock on the
// certificate file; the kernel releases it when the process exits).
// This is how replicas of one service that share a certificates volume
// (`docker compose up --scale worker=N`) get distinct identities without
// the CA key: each takes a different worker-K. The lock works on a
// read-only mount and across the containers of one host, not across
// machines: there, give each machine its own certificate.
func Claim(dir, pattern string) (name string, held *os.File, err error) {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return "", nil, fmt.Errorf("--tls-name %q: %w", pattern, err)
	}
	certs, err := filepath.Glob(filepath.Join(dir, pattern+".crt"))
	if err != nil {
		return "", nil, fmt.Errorf("--tls-name %q: %w", pattern, err)
	}
	// worker-2 before worker-10: replicas take the low numbers first.
	slices.SortFunc(certs, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	for _, c := range certs {
		name = strings.TrimSuffix(filepath.Base(c), ".crt")
		if name == "ca" {
			continue
		}
		f, err := os.Open(c)
		if err != nil {
			return "", nil, fmt.Errorf("claim certificate %s: %w", c, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // another process holds it
			}
			return "", nil, fmt.Errorf("claim certificate %s: %w", c, err)
		}
		return name, f, nil
	}
	if len(certs) == 0 {
		return "", nil, fmt.Errorf("--tls-name %q: no certificate in %s matches; issue them with `ringctl certs ensure` (or `certs issue`)", pattern, dir)
	}
	return "", nil, fmt.Errorf("--tls-name %q: all %d matching certificates in %s are held by running processes; issue more or run fewer", pattern, len(certs), dir)
}
