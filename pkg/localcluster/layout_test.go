package localcluster

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Real processes: one model trained in three jobs chained by `submit
// --from`, each starting from the previous job's final committed
// checkpoint in another layout — DP 1 × TP 2, then DP 2 × TP 1 with
// ZeRO-1, then DP 1 × TP 2 again without it — ends where one process
// running all the steps ends (the same LR schedule throughout:
// lr_decay_iters is the whole run's). The checkpoints are resharded on
// load (TP 2 → 1 → 2) and the ZeRO-1 moments re-cut (off → on → off).
func TestClusterCheckpointLoadsIntoAnyLayout(t *testing.T) {
	base := []string{"train.learning_rate=3e-4", "train.min_lr=3e-5", "train.lr_decay_iters=450", "train.max_iters=450"}
	want := reference(t, smallSpec(t, base...))
	c := startCluster(t, 2)
	cl := c.Client()
	defer cl.Close()

	stages := []struct {
		until int
		sets  []string
	}{
		{150, []string{"parallel.tp=2", "parallel.min_workers=2"}},
		{300, []string{"parallel.tp=1", "parallel.min_workers=2", "parallel.zero1=true"}},
		{450, []string{"parallel.tp=2", "parallel.min_workers=2"}},
	}
	var prev string
	for i, st := range stages {
		spec := smallSpec(t, append(append(append([]string(nil), base...), st.sets...), "train.max_iters="+strconv.Itoa(st.until))...)
		req := &pb.SubmitJobRequest{Spec: spec.Marshal()}
		if prev != "" {
			req.FromJob = prev
		}
		job, err := cl.Submit(context.Background(), req)
		if err != nil {
			t.Fatalf("stage %d: submit: %v", i, err)
		}
		if prev != "" && (job.InitFrom == nil || job.InitFrom.JobId != prev || job.InitFrom.Step != int64(stages[i-1].until)) {
			t.Fatalf("stage %d: job starts from %v, want %s@%d", i, job.InitFrom, prev, stages[i-1].until)
		}
		var first *pb.Generation
		end := waitJob(t, c, job.Id, 3*time.Minute, func(r *pb.GetJobResponse) {
			if first == nil && r.Generation != nil {
				first = r.Generation
			}
		})
		if end.State != pb.JobState_JOB_STATE_COMPLETED {
			t.Fatalf("stage %d (%s): job ended %v: %s", i, strings.Join(st.sets, " "), end.State, end.Reason)
		}
		if prev != "" && (first.ResumeJob != prev || first.ResumeStep != int64(stages[i-1].until)) {
			t.Errorf("stage %d: first generation resumes from %s@%d, want %s@%d", i, first.ResumeJob, first.ResumeStep, prev, stages[i-1].until)
		}
		prev = job.Id
	}
	saved, err := train.Load(c.ModelDir(prev), model.Compute{})
	if err != nil {
		t.Fatal(err)
	}
	got := saved.Model.Params().Data
	var worst, diff2, norm2 float64
	for i := range got {
		d := float64(got[i] - want[i])
		worst = math.Max(worst, math.Abs(d)/math.Max(1e-3, math.Abs(float64(want[i]))))
		diff2, norm2 = diff2+d*d, norm2+float64(want[i])*float64(want[i])
	}
	// The state moves between layouts bit for bit (ckpt's Gather/Reshard
	// tests); what differs is each layout's float summation order.
	t.Logf("after TP 2 → 1 (ZeRO-1, DP 2) → 2: max elementwise relative difference from the straight run %.3g, relative L2 %.3g",
		worst, math.Sqrt(diff2/norm2))
	if worst > 1e-4 {
		t.Errorf("parameters differ from the straight single-process run by %.3g relative (> 1e-4)", worst)
	}

	// A model that differs is refused, naming the field.
	bad := smallSpec(t, append(base, "model.n_embd=64")...)
	_, err = cl.Submit(context.Background(), &pb.SubmitJobRequest{Spec: bad.Marshal(), FromJob: prev})
	if err == nil || !strings.Contains(err.Error(), "model.n_embd: 32 there, 64 here") {
		t.Errorf("submit --from with another model: %v; want the differing field named", err)
	}
	_, err = cl.Submit(context.Background(), &pb.SubmitJobRequest{Spec: bad.Marshal(), FromJob: prev, FromStep: 7})
	if err == nil || !strings.Contains(err.Error(), "not a committed checkpoint") {
		t.Errorf("submit --from an uncommitted step: %v", err)
	}
}
