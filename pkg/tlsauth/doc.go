// Package tlsauth is the cluster's identity room: a certificate authority
// and the certificates it issues (Go's crypto, ECDSA P-256), the roles and
// names they carry, TLS configurations that require and verify them, their
// reload on rotation, and the gRPC authorization that maps an RPC to the
// role it needs.
//
// An identity lives in the certificate, never in a request: a leaf carries
// one URI SAN, ringmaster://<role>/<name> — role coordinator, worker or
// operator; name the coordinator's node id, the worker's id or the
// operator's name. Peers are verified against the cluster CA by that
// identity (not by host name), so the same certificate works on any address
// a container gets.
//
// Certificates are read from files on every reload (Source.Reload, on
// SIGHUP or when Source.Watch sees the files change); every new handshake
// and every authorized call uses the current files, so a certificate that
// expired, or whose CA was replaced, stops working at its next use without
// a restart.
//
// The package knows nothing of jobs or workers' ranks: callers say which
// identity they expect (Expect, Rule.Self) and this package checks it.
package tlsauth
