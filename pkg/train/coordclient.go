package train

import (
	"context"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// CoordinatorClient is the Coordinator a worker reaches over gRPC through c
// (which finds and follows the leader).
func CoordinatorClient(c *coord.Client) Coordinator { return coordClient{c} }

type coordClient struct{ c *coord.Client }

func (a coordClient) RegisterWorker(ctx context.Context, req *pb.RegisterWorkerRequest) (*pb.Worker, error) {
	return a.c.RegisterWorker(ctx, req)
}

func (a coordClient) OpenSession(ctx context.Context, hello *pb.WorkerMessage) (Session, *pb.Assignment, error) {
	s, err := a.c.OpenSession(ctx, hello)
	if err != nil {
		return nil, nil, err
	}
	return s, s.First, nil
}

func (a coordClient) ReportCheckpoint(ctx context.Context, req *pb.ReportCheckpointRequest) (bool, error) {
	return a.c.ReportCheckpoint(ctx, req)
}
