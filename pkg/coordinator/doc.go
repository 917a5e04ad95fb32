// Package coordinator is a whole coordinator process, assembled from its
// rooms: a coord.Node (raft, the FSM, the leader's scheduler and failure
// detector) behind the gRPC service with mutual TLS and authorization,
// the dashboard recorder and the HTTP endpoints. cmd/coordinator parses
// flags into a Config and calls Run.
package coordinator
