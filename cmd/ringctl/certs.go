package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
)

func newCertsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "certs",
		Short: "make the cluster CA and coordinator/worker/operator certificates (mutual TLS)",
	}
	var dir string
	var force bool
	var lifetime string
	initCmd := &cobra.Command{
		Use:   "init [--dir DIR]",
		Short: "make a new cluster CA (ca.crt, ca.key) in --dir",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			d, err := parseLifetime(lifetime, tlsauth.DefaultCALifetime)
			if err != nil {
				return err
			}
			ca, err := tlsauth.InitDir(dir, d, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "CA in %s, valid until %s\n", dir, ca.Cert.NotAfter.Format("2006-01-02"))
			return nil
		},
	}
	initCmd.Flags().BoolVar(&force, "force", false, "replace an existing CA (revokes every certificate it signed)")
	initCmd.Flags().StringVar(&lifetime, "lifetime", "", "CA lifetime, e.g. 87600h (default 10 years)")

	var role string
	var hosts []string
	var file string
	var leafLife string
	issueCmd := &cobra.Command{
		Use:   "issue --role coordinator|worker|operator NAME [--dir DIR]",
		Short: "issue a certificate for NAME (a coordinator's node id, a worker's id, an operator) into --dir",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runCertsIssue(c.OutOrStdout(), dir, role, args[0], file, hosts, leafLife)
		},
	}
	issueCmd.Flags().StringVar(&role, "role", "", "coordinator, worker or operator (required)")
	issueCmd.Flags().StringSliceVar(&hosts, "host", nil, "extra DNS names or IPs for tools that verify by host name (repeatable)")
	issueCmd.Flags().StringVar(&file, "file", "", "file name in --dir (default NAME: NAME.crt, NAME.key)")
	issueCmd.Flags().StringVar(&leafLife, "lifetime", "", "certificate lifetime, e.g. 720h (default 1 year)")
	c.PersistentFlags().StringVar(&dir, "dir", "ringmaster-data/certs", "certificates directory (holds ca.key: keep it off the nodes)")
	var chown string
	var renewWithin time.Duration
	ensureCmd := &cobra.Command{
		Use:   "ensure [--dir CA_DIR] ROLE:NAME[:OUT_DIR]...",
		Short: "make the CA if there is none and issue every listed certificate that is missing, expiring or from another CA (idempotent)",
		Long: `ensure is what a one-shot certificates job runs each time a cluster starts
(docker-compose.yml's certs service, a Kubernetes Job): it makes the CA in
--dir when there is none, then for each ROLE:NAME[:OUT_DIR] issues NAME.crt
and NAME.key into OUT_DIR (default --dir) unless a certificate is already
there for that identity, signed by this CA and valid for longer than
--renew-within; ca.crt is written beside them. NAME may end in a range,
worker-{1..8}, for a pool of workers (see the workers' --tls-name 'worker-*').
Keep --dir (it holds ca.key) off the nodes: give each kind of node its own
OUT_DIR.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runCertsEnsure(c.OutOrStdout(), dir, args, chown, renewWithin, time.Now())
		},
	}
	ensureCmd.Flags().StringVar(&chown, "chown", "", "UID:GID to own the written files and OUT_DIRs (e.g. 65532:65532, the images' user)")
	ensureCmd.Flags().DurationVar(&renewWithin, "renew-within", 30*24*time.Hour, "reissue a certificate that expires within this long")
	c.AddCommand(initCmd, issueCmd, ensureCmd)
	return c
}

// certSpec is one ROLE:NAME[:OUT_DIR] argument of certs ensure.
type certSpec struct {
	id  tlsauth.Identity
	dir string
}

var nameRange = regexp.MustCompile(`^(.*)\{(\d+)\.\.(\d+)\}$`)

func parseCertSpecs(args []string, defDir string) ([]certSpec, error) {
	var out []certSpec
	for _, a := range args {
		parts := strings.SplitN(a, ":", 3)
		if len(parts) < 2 || parts[1] == "" {
			return nil, usagef("%q: want ROLE:NAME[:OUT_DIR], e.g. worker:worker-{1..8}:/certs/workers", a)
		}
		r, err := tlsauth.ParseRole(parts[0])
		if err != nil {
			return nil, usagef("%q: %v", a, err)
		}
		dir := defDir
		if len(parts) == 3 && parts[2] != "" {
			dir = parts[2]
		}
		names := []string{parts[1]}
		if m := nameRange.FindStringSubmatch(parts[1]); m != nil {
			lo, _ := strconv.Atoi(m[2])
			hi, _ := strconv.Atoi(m[3])
			if hi < lo || hi-lo >= 1000 {
				return nil, usagef("%q: range {%s..%s}: want low ≤ high, at most 1000 names", a, m[2], m[3])
			}
			names = names[:0]
			for i := lo; i <= hi; i++ {
				names = append(names, fmt.Sprintf("%s%d", m[1], i))
			}
		}
		for _, n := range names {
			id := tlsauth.Identity{Role: r, Name: n}
			if err := id.Validate(); err != nil {
				return nil, usagef("%q: %v", a, err)
			}
			out = append(out, certSpec{id, dir})
		}
	}
	return out, nil
}

func runCertsEnsure(stdout io.Writer, caDir string, args []string, chown string, renewWithin time.Duration, now time.Time) error {
	specs, err := parseCertSpecs(args, caDir)
	if err != nil {
		return err
	}
	uid, gid := -1, -1
	if chown != "" {
		u, g, ok := strings.Cut(chown, ":")
		var e1, e2 error
		uid, e1 = strconv.Atoi(u)
		gid, e2 = strconv.Atoi(g)
		if !ok || e1 != nil || e2 != nil {
			return usagef("--chown %q: want UID:GID in numbers, e.g. 65532:65532", chown)
		}
	}
	ca, err := tlsauth.LoadCA(caDir)
	if errors.Is(err, fs.ErrNotExist) {
		if ca, err = tlsauth.InitDir(caDir, 0, false); err == nil {
			fmt.Fprintf(stdout, "CA made in %s, valid until %s\n", caDir, ca.Cert.NotAfter.Format("2006-01-02"))
		}
	}
	if err != nil {
		return fmt.Errorf("CA in %s: %w", caDir, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, sp := range specs {
		why := certNeeds(sp, roots, renewWithin, now)
		if why == "" {
			fmt.Fprintf(stdout, "%s in %s: kept\n", sp.id, sp.dir)
		} else {
			leaf, err := ca.IssueToDir(sp.dir, "", tlsauth.IssueOptions{Identity: sp.id, Now: now})
			if err != nil {
				return fmt.Errorf("issue %s into %s: %w", sp.id, sp.dir, err)
			}
			fmt.Fprintf(stdout, "%s in %s: issued (%s), valid until %s\n", sp.id, sp.dir, why, leaf.Cert.NotAfter.Format("2006-01-02"))
		}
		// The folder's ca.crt must be this CA's (it may predate a new CA).
		caFile := filepath.Join(sp.dir, tlsauth.CACertFile)
		if b, err := os.ReadFile(caFile); err != nil || !bytes.Equal(b, ca.PEM) {
			if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
				return err
			}
		}
		if uid >= 0 {
			for _, p := range []string{sp.dir, caFile, filepath.Join(sp.dir, tlsauth.CertFile(sp.id.Name)), filepath.Join(sp.dir, tlsauth.KeyFile(sp.id.Name))} {
				if err := os.Chown(p, uid, gid); err != nil {
					return fmt.Errorf("--chown: %w", err)
				}
			}
		}
	}
	return nil
}

// certNeeds says why sp's certificate must be issued ("" when the one in
// its folder is for that identity, signed by a CA in roots and valid long
// enough).
func certNeeds(sp certSpec, roots *x509.CertPool, renewWithin time.Duration, now time.Time) string {
	b, err := os.ReadFile(filepath.Join(sp.dir, tlsauth.CertFile(sp.id.Name)))
	if err != nil {
		return "none there"
	}
	if _, err := os.Stat(filepath.Join(sp.dir, tlsauth.KeyFile(sp.id.Name))); err != nil {
		return "no key"
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "unreadable"
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "unreadable"
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return "not valid under this CA"
	}
	if id, err := tlsauth.FromCertificate(c); err != nil || id != sp.id {
		return "another identity"
	}
	if c.NotAfter.Sub(now) < renewWithin {
		return "expires " + c.NotAfter.Format("2006-01-02")
	}
	return ""
}

func runCertsIssue(stdout io.Writer, dir, role, name, file string, hosts []string, lifetime string) error {
	r, err := tlsauth.ParseRole(role)
	if err != nil {
		return usagef("--role: %v", err)
	}
	d, err := parseLifetime(lifetime, tlsauth.DefaultLeafLifetime)
	if err != nil {
		return err
	}
	ca, err := tlsauth.LoadCA(dir)
	if err != nil {
		return err
	}
	leaf, err := ca.IssueToDir(dir, file, tlsauth.IssueOptions{Identity: tlsauth.Identity{Role: r, Name: name}, Hosts: hosts, Lifetime: d})
	if err != nil {
		return err
	}
	if file == "" {
		file = name
	}
	fmt.Fprintf(stdout, "%s/%s in %s (%s, %s), valid until %s\n", r, name, dir, tlsauth.CertFile(file), tlsauth.KeyFile(file), leaf.Cert.NotAfter.Format("2006-01-02"))
	return nil
}

func parseLifetime(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usagef("--lifetime %q: want a positive duration such as 720h", s)
	}
	return d, nil
}
