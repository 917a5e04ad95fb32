// Command recovery measures worker-loss recovery: a 3-coordinator cluster
// with five worker processes on 127.0.0.1 runs a 4-worker data-parallel job
// (one warm spare). Each round SIGKILLs a random worker of the current
// generation and times kill → the first step completed by the new
// generation (read from the workers' step log lines, which carry the
// generation). The killed worker is restarted and becomes the next spare.
// It prints every round and the median and max.
//
//	go run ./bench/recovery -rounds 20
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "recovery:", err)
		os.Exit(1)
	}
}

func run() error {
	rounds := flag.Int("rounds", 20, "worker kills")
	timeout := flag.Duration("worker-timeout", 3*time.Second, "coordinator --worker-timeout")
	seed := flag.Uint64("seed", 1, "which worker each round kills")
	insecure := flag.Bool("insecure", false, "run the cluster without TLS (default: mutual TLS, as ringctl local does), to compare")
	flag.Parse()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "recovery")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "bin")
	if err := localcluster.Build(ctx, root, bin); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	c, err := localcluster.Start(sctx, localcluster.Config{Dir: dir, BinDir: bin, Workers: 5, WorkerTimeout: *timeout, Insecure: *insecure})
	cancel()
	if err != nil {
		return err
	}
	defer c.Stop()
	spec, err := jobspec.Override(jobspec.Default(), []string{"model.n_layer=1", "model.n_embd=32", "train.max_iters=1000000",
		"checkpoint.interval=20", "train.eval_interval=0", "train.log_interval=1", "train.held_out=50",
		"parallel.min_workers=4", "parallel.max_workers=4"})
	if err != nil {
		return err
	}
	cl := c.Client()
	defer cl.Close()
	job, err := cl.SubmitJob(ctx, spec.Marshal())
	if err != nil {
		return err
	}
	defer func() { _, _ = cl.CancelJob(context.Background(), job.Id, "benchmark done") }()
	rng := rand.New(rand.NewPCG(*seed, 0))
	var times []time.Duration
	for r := 1; r <= *rounds; r++ {
		g, err := settled(ctx, cl, job.Id)
		if err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		victim := g.Ranks[rng.IntN(len(g.Ranks))].WorkerId
		var p *localcluster.Proc
		for _, w := range c.Workers {
			if w.Name == victim {
				p = w
			}
		}
		t0 := time.Now()
		p.Signal(syscall.SIGKILL)
		first, gen, err := firstStepAfter(c, g.Number, t0, 60*time.Second)
		if err != nil {
			return fmt.Errorf("round %d: killed %s: %w", r, victim, err)
		}
		d := first.Sub(t0)
		times = append(times, d)
		fmt.Printf("round %2d: killed %s (generation %d), first step of generation %d after %v\n", r, victim, g.Number, gen, d.Round(time.Millisecond))
		p.Wait()
		if err := c.Restart(p); err != nil {
			return err
		}
	}
	slices.Sort(times)
	med := times[len(times)/2]
	if len(times)%2 == 0 {
		med = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	fmt.Printf("recovery (worker SIGKILL → first step of the new generation), %d rounds, 4 workers + 1 spare, worker timeout %s: median %v, min %v, max %v\n",
		len(times), *timeout, med.Round(time.Millisecond), times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	return nil
}

// settled waits until the job runs a 4-rank generation and every worker is
// alive (the restarted one is registered as the spare).
func settled(ctx context.Context, cl *coord.Client, job string) (*pb.Generation, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := cl.GetJob(actx, job)
		ws, werr := cl.ListWorkers(actx)
		cancel()
		if err == nil && werr == nil && r.Job.State == pb.JobState_JOB_STATE_RUNNING && r.Generation != nil && len(r.Generation.Ranks) == 4 {
			alive := 0
			for _, w := range ws {
				if w.State == pb.WorkerState_WORKER_STATE_ALIVE {
					alive++
				}
			}
			if alive == 5 {
				return r.Generation, nil
			}
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	return nil, fmt.Errorf("job %s did not settle on 4 workers and a spare", job)
}

// firstStepAfter scans the worker logs for the earliest step line of a
// generation newer than gen logged after t0.
func firstStepAfter(c *localcluster.Cluster, gen uint64, t0 time.Time, limit time.Duration) (time.Time, uint64, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var best time.Time
		var bestGen uint64
		for _, w := range c.Workers {
			t, g := scan(w.Log, gen, t0)
			if !t.IsZero() && (best.IsZero() || t.Before(best)) {
				best, bestGen = t, g
			}
		}
		if !best.IsZero() {
			return best, bestGen, nil
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	return time.Time{}, 0, fmt.Errorf("no step of a generation after %d within %v", gen, limit)
}

func scan(path string, gen uint64, t0 time.Time) (time.Time, uint64) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, "msg=step ") {
			continue
		}
		var ts time.Time
		var g uint64
		for _, field := range strings.Fields(l) {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "time":
				ts, _ = time.Parse(time.RFC3339Nano, v)
			case "generation":
				g, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		if g > gen && ts.After(t0) {
			return ts, g
		}
	}
	return time.Time{}, 0
}
