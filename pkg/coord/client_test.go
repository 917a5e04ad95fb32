package coord

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestRetryable(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		tr         metadata.MD
		retry      bool
		wantLeader string
	}{
		{"redirect", status.Error(codes.Unavailable, "x"), metadata.Pairs(TrailerLeader, "l:1"), true, "l:1"},
		{"no leader known", status.Error(codes.Unavailable, "x"), metadata.Pairs(TrailerLeader, ""), true, ""},
		{"transport failure", status.Error(codes.Unavailable, "connection refused"), nil, true, ""},
		{"outcome unknown", status.Error(codes.Unavailable, "x"), metadata.Pairs(TrailerOutcome, "unknown"), false, ""},
		{"invalid argument", status.Error(codes.InvalidArgument, "x"), nil, false, ""},
		{"plain error", errors.New("x"), nil, false, ""},
	}
	for _, c := range cases {
		retry, leader := retryable(c.err, c.tr)
		if retry != c.retry || leader != c.wantLeader {
			t.Errorf("%s: retry=%v leader=%q, want %v %q", c.name, retry, leader, c.retry, c.wantLeader)
		}
	}
}

func TestStatusOf(t *testing.T) {
	cases := []struct {
		err  error
		code codes.Code
		md   string
	}{
		{&NotLeaderError{LeaderID: "c2", LeaderGRPC: "g:2"}, codes.Unavailable, TrailerLeader},
		{&NotLeaderError{}, codes.Unavailable, TrailerLeader},
		{errors.Join(ErrNoQuorum, ErrOutcomeUnknown), codes.Unavailable, TrailerOutcome},
		{ErrJobNotFound, codes.NotFound, ""},
		{ErrDuplicateWorker, codes.AlreadyExists, ""},
		{ErrProtocolVersion, codes.FailedPrecondition, ""},
		{ErrBadGeneration, codes.InvalidArgument, ""},
		{errors.New("boom"), codes.Internal, ""},
	}
	for _, c := range cases {
		md, st := statusOf(c.err)
		if status.Code(st) != c.code || (c.md != "" && len(md.Get(c.md)) == 0) {
			t.Errorf("%v: %v %v", c.err, st, md)
		}
	}
	if !errors.Is(&NotLeaderError{}, ErrNoQuorum) || errors.Is(&NotLeaderError{LeaderID: "x"}, ErrNoQuorum) {
		t.Error("NotLeaderError matches ErrNoQuorum only when no leader is known")
	}
}
