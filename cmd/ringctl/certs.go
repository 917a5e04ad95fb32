package main

import (
	"fmt"
	"io"
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
	c.AddCommand(initCmd, issueCmd)
	return c
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
