package coord

import (
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Policy is who may call each coordinator method when the API runs with
// mutual TLS (tlsauth.Authorizer). Workers act only as the worker their
// certificate names (Self: a request's worker_id must be theirs); the
// calls that change jobs or membership need the operator role or the
// cluster's bearer token; reads need any cluster certificate (or none,
// with OpenReads); health probes are open.
func Policy() tlsauth.Policy {
	worker := tlsauth.Rule{Roles: []tlsauth.Role{tlsauth.RoleWorker}, Self: true}
	operator := tlsauth.Rule{Roles: []tlsauth.Role{tlsauth.RoleOperator}, Token: true}
	read := tlsauth.Rule{Read: true}
	return tlsauth.Policy{
		pb.Coordinator_SubmitJob_FullMethodName:         operator,
		pb.Coordinator_CancelJob_FullMethodName:         operator,
		pb.Coordinator_RemoveCoordinator_FullMethodName: operator,
		// A coordinator joining the group asks the leader to add it.
		pb.Coordinator_JoinCoordinator_FullMethodName:  {Roles: []tlsauth.Role{tlsauth.RoleCoordinator, tlsauth.RoleOperator}, Token: true},
		pb.Coordinator_RegisterWorker_FullMethodName:   worker,
		pb.Coordinator_WorkerSession_FullMethodName:    worker,
		pb.Coordinator_ReportCheckpoint_FullMethodName: worker,
		pb.Coordinator_GetJob_FullMethodName:           read,
		pb.Coordinator_ListJobs_FullMethodName:         read,
		pb.Coordinator_ListWorkers_FullMethodName:      read,
		pb.Coordinator_Status_FullMethodName:           read,
		"/grpc.health.v1.Health/Check":                 {Open: true},
		"/grpc.health.v1.Health/Watch":                 {Open: true},
		"/grpc.health.v1.Health/List":                  {Open: true},
	}
}
