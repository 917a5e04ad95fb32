// Command failover measures coordinator leader failover: it runs a 3-process
// coordinator group on 127.0.0.1, and for each round SIGKILLs the leader and
// times kill → first successful write (a SubmitJob committed by the new
// leader). The killed node is restarted from its data dir and allowed to
// catch up before the next round. It prints every round and the median and
// max.
//
//	go run ./bench/failover -rounds 20
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/coord/proccluster"
)

const spec = `{"name": "f", "model": {"arch": "gpt", "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8},
 "data": {"task": "sort", "length": 3, "digits": 3},
 "train": {"max_iters": 10, "batch_size": 4, "learning_rate": 0.001, "min_lr": 0.0001, "warmup_iters": 1,
  "beta1": 0.9, "beta2": 0.95, "weight_decay": 0, "grad_clip": 1, "seed": 1, "eval_interval": 0, "eval_iters": 1, "log_interval": 1}}`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

func run() error {
	rounds := flag.Int("rounds", 20, "leader kills")
	raftTimeout := flag.String("raft-timeout", "1s", "coordinator --raft-timeout (1s is the default)")
	bin := flag.String("bin", "", "coordinator binary (default: build one)")
	flag.Parse()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "failover")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *bin == "" {
		if *bin, err = proccluster.Build(ctx, dir); err != nil {
			return err
		}
	}
	c, err := proccluster.New(*bin, dir, 3, "--raft-timeout", *raftTimeout, "--log-level", "warn")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.StartAll(); err != nil {
		return err
	}
	cl := coord.NewClient(c.Addrs())
	defer cl.Close()
	if err := write(ctx, cl, 30*time.Second); err != nil {
		return fmt.Errorf("first write: %w", err)
	}
	jobs := 1
	var times []time.Duration
	for r := 1; r <= *rounds; r++ {
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		lead, err := c.Leader(lctx)
		cancel()
		if err != nil {
			return err
		}
		if err := c.Kill(lead); err != nil {
			return err
		}
		t0 := time.Now()
		survivors := coord.NewClient(c.RunningAddrs())
		err = write(ctx, survivors, 60*time.Second)
		d := time.Since(t0)
		survivors.Close()
		if err != nil {
			return fmt.Errorf("round %d: no write after killing %s: %w", r, c.Nodes[lead].ID, err)
		}
		jobs++
		times = append(times, d)
		fmt.Printf("round %2d: killed %s, first write after %v\n", r, c.Nodes[lead].ID, d.Round(time.Millisecond))
		if err := c.Start(lead); err != nil {
			return err
		}
		if err := caughtUp(ctx, c.Nodes[lead].GRPCAddr, jobs); err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
	}
	slices.Sort(times)
	med := times[len(times)/2]
	if len(times)%2 == 0 {
		med = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	fmt.Printf("failover (kill → first committed write), %d rounds, raft timeout %s: median %v, min %v, max %v\n",
		len(times), *raftTimeout, med.Round(time.Millisecond), times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	return nil
}

// write retries SubmitJob with short attempts until one commits.
func write(ctx context.Context, cl *coord.Client, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		actx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err = cl.SubmitJob(actx, []byte(spec))
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(5 * time.Millisecond) // retry pacing
	}
	return err
}

// caughtUp waits until the node at addr has applied all jobs.
func caughtUp(ctx context.Context, addr string, jobs int) error {
	cl := coord.NewClient([]string{addr})
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		js, err := cl.ListJobs(actx)
		cancel()
		if err == nil && len(js) >= jobs {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	return fmt.Errorf("restarted node %s did not catch up", addr)
}
