package train

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Offers outside the current generation's copy plan are refused with the
// status that says why, before anything is fetched.
func TestOfferRefusesWhatThePlanDoesNotName(t *testing.T) {
	w := &Worker{cfg: WorkerConfig{ID: "b"}}
	w.assigned.Store(&pb.Assignment{JobId: "j", Rank: 1, Generation: &pb.Generation{
		JobId: "j", Number: 7, DpSize: 1, TpSize: 2,
		Ranks:         []*pb.Rank{{Rank: 0, WorkerId: "a", Tp: 0}, {Rank: 1, WorkerId: "b", Tp: 1}},
		ReplicaCopies: []*pb.ReplicaCopy{{From: 0, To: 1}, {From: 1, To: 0}},
	}})
	for _, c := range []struct {
		name string
		req  *pb.OfferShardRequest
		code codes.Code
	}{
		{"another generation", &pb.OfferShardRequest{Job: "j", Generation: 6, Tp: 0, WorkerId: "a"}, codes.FailedPrecondition},
		{"another job", &pb.OfferShardRequest{Job: "k", Generation: 7, Tp: 0, WorkerId: "a"}, codes.FailedPrecondition},
		{"a shard the source does not hold", &pb.OfferShardRequest{Job: "j", Generation: 7, Tp: 1, WorkerId: "a"}, codes.PermissionDenied},
		{"a worker the plan does not name", &pb.OfferShardRequest{Job: "j", Generation: 7, Tp: 0, WorkerId: "x"}, codes.PermissionDenied},
	} {
		err := w.Offer(context.Background(), c.req)
		if status.Code(err) != c.code {
			t.Errorf("%s: %v, want %v", c.name, err, c.code)
		}
	}
	// The plan's own copy is taken only while the worker runs (here it
	// does not: no background context yet).
	err := w.Offer(context.Background(), &pb.OfferShardRequest{Job: "j", Generation: 7, Tp: 0, WorkerId: "a"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("the plan's copy on a stopped worker: %v, want Unavailable", err)
	}
}
