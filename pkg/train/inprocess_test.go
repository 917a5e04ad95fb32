package train

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/internal/freeport"
	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// inProcessCluster is a one-node coordinator and n worker processes
// (RunProcess, what cmd/worker runs), all in this test process over
// 127.0.0.1, the way raft's own tests run a group in memory: the workers'
// sessions, generations, collectives, checkpoints and final save run under
// the race detector and goleak, with no binary.
type inProcessCluster struct {
	client   *coord.Client
	outDir   string
	dataDirs []string // each worker's checkpoints, readable once stopWorkers returned

	stopWorkers func() // cancels the workers and waits for them (idempotent)
}

func startInProcess(t *testing.T, n int) *inProcessCluster {
	t.Helper()
	dir := t.TempDir()
	addrs, err := freeport.Addrs(2)
	if err != nil {
		t.Fatal(err)
	}
	raftAddr, grpcAddr := addrs[0], addrs[1]
	nodeCtx, stopNode := context.WithCancel(context.Background())
	node, err := coord.Open(nodeCtx, coord.Config{
		ID: "c1", RaftAddr: raftAddr, GRPCAddr: grpcAddr, DataDir: filepath.Join(dir, "c1"),
		Peers:         []coord.Peer{{ID: "c1", RaftAddr: raftAddr, GRPCAddr: grpcAddr}},
		WorkerTimeout: 2 * time.Second, HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond, RaftLog: discard{}, Logger: quiet,
	})
	if err != nil {
		stopNode()
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coord.NewService(node).Register(gs)
	c := &inProcessCluster{client: coord.NewClient([]string{grpcAddr}), outDir: filepath.Join(dir, "models")}
	workersCtx, cancelWorkers := context.WithCancel(context.Background())
	var workers, servers sync.WaitGroup
	c.stopWorkers = sync.OnceFunc(func() { cancelWorkers(); workers.Wait() })
	t.Cleanup(func() { // stops whatever was started, also after a t.Fatal below
		c.stopWorkers()
		c.client.Close()
		node.QuietRaft()
		gs.Stop()
		_ = node.Close()
		stopNode()
		servers.Wait()
	})
	lis, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	servers.Go(func() { _ = gs.Serve(lis) })

	for i := range n {
		cfg := ProcessConfig{
			ID: fmt.Sprintf("w%d", i+1), Coordinators: []string{grpcAddr}, Listen: "127.0.0.1:0",
			OutDir: c.outDir, DataDir: filepath.Join(dir, fmt.Sprintf("w%d", i+1)),
			PeakFLOPS: -1, Cores: 1, Threads: 1, PeerTimeout: 5 * time.Second, Logger: quiet,
		}
		c.dataDirs = append(c.dataDirs, cfg.DataDir)
		workers.Go(func() {
			if err := RunProcess(workersCtx, cfg); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("worker %s: %v", cfg.ID, err)
			}
		})
	}
	return c
}

// quiet drops the cluster's logs (failures reach the test as errors).
var quiet = slog.New(slog.DiscardHandler)

// discard is an io.Writer for raft's own log.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// waitJob polls the job until it ends or the deadline passes.
func (c *inProcessCluster) waitJob(t *testing.T, id string, limit time.Duration) *pb.GetJobResponse {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := c.client.GetJob(ctx, id)
		cancel()
		if err == nil {
			switch r.Job.State {
			case pb.JobState_JOB_STATE_COMPLETED, pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_CANCELLED:
				return r
			}
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	t.Fatalf("job %s did not end within %v", id, limit)
	return nil
}

// train.Worker in process: a DP 2 × TP 2 job over four Workers and an
// in-process coordinator trains what one Trainer trains, checkpoints and
// commits on the way, and the DP 0 / TP 0 worker saves the final model.
func TestWorkersInProcessTrainLikeOneProcess(t *testing.T) {
	spec, err := jobspec.Override(jobspec.Default(), []string{
		"model.n_layer=1", "model.n_embd=32", "train.max_iters=60", "checkpoint.interval=20",
		"train.eval_interval=0", "train.eval_iters=2", "train.held_out=50",
		"parallel.tp=2", "parallel.min_workers=4",
	})
	if err != nil {
		t.Fatal(err)
	}
	ref := newTrainer(t, spec)
	for ref.Iter() < spec.Train.MaxIters {
		if _, err := ref.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	want := ref.Model.Params().Data

	c := startInProcess(t, 4)
	job, err := c.client.SubmitJob(context.Background(), spec.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	end := c.waitJob(t, job.Id, 2*time.Minute)
	if end.Job.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("job ended %v: %s", end.Job.State, end.Job.Reason)
	}
	// Every worker stored tensor-parallel shards of a TP 2 layout, two of
	// each index (DP 2).
	c.stopWorkers()
	holders := map[int]int{}
	for i, dir := range c.dataDirs {
		st, err := ckpt.Open(filepath.Join(dir, "checkpoints.db"), ckpt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		infos, err := st.List(job.Id)
		_ = st.Close()
		if err != nil || len(infos) == 0 {
			t.Fatalf("worker %d stored no checkpoint of the job (%v)", i+1, err)
		}
		holders[infos[0].TP]++
		if infos[0].TPSize != 2 {
			t.Fatalf("worker %d: a checkpoint of TP size %d, want 2", i+1, infos[0].TPSize)
		}
	}
	if holders[0] != 2 || holders[1] != 2 {
		t.Fatalf("TP shard holders %v, want two workers per index (dp 2 × tp 2)", holders)
	}
	if end.Job.CommittedStep < int64(spec.Train.MaxIters) {
		t.Errorf("committed step %d, want the final %d", end.Job.CommittedStep, spec.Train.MaxIters)
	}
	saved, err := Load(filepath.Join(c.outDir, job.Id), model.Compute{})
	if err != nil {
		t.Fatal(err)
	}
	got := saved.Model.Params().Data
	if len(got) != len(want) {
		t.Fatalf("cluster model has %d parameters, the single process %d", len(got), len(want))
	}
	var worst float64
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i]))/math.Max(1, math.Abs(float64(want[i]))))
	}
	if worst > 1e-4 {
		t.Errorf("parameters differ from the single-process run by %.2g relative (> 1e-4)", worst)
	}
	t.Logf("dp 2 × tp 2 in process: committed step %d, max relative difference %.2g", end.Job.CommittedStep, worst)
}
