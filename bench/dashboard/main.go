// Command dashboard measures what an open dashboard costs training: it runs a
// local cluster (3 coordinators, -workers workers) training baby GPT, and
// alternates phases with the dashboard closed and open (a poller doing what
// the page does: GET /api/v1/cluster, /api/v1/jobs and /api/v1/jobs/{id}
// every -poll). Each phase's step time is its wall time over the steps the
// job advanced (the leader's latest heartbeats at the phase's ends). It prints every
// phase, the medians and the open/closed ratio. The recorder behind the API
// samples progress in both phases (it runs whether or not anyone looks).
//
//	go run ./bench/dashboard -pairs 6 -phase 10s
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard bench:", err)
		os.Exit(1)
	}
}

func run() error {
	pairs := flag.Int("pairs", 6, "closed/open phase pairs (alternating; the first of each pair alternates too)")
	phase := flag.Duration("phase", 10*time.Second, "length of one phase")
	poll := flag.Duration("poll", time.Second, "the open page's polling period")
	workers := flag.Int("workers", 1, "workers")
	data := flag.String("data", "../shared/data/tinyshakespeare.txt", "tiny shakespeare")
	bin := flag.String("bin", "", "directory with coordinator and worker binaries (default: build them)")
	flag.Parse()
	ctx := context.Background()
	abs, err := filepath.Abs(*data)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ringmaster-dashboard-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *bin == "" {
		*bin = filepath.Join(dir, "bin")
		root, err := filepath.Abs(".")
		if err != nil {
			return err
		}
		if err := localcluster.Build(ctx, root, *bin); err != nil {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := localcluster.Start(sctx, localcluster.Config{Dir: dir, BinDir: *bin, Workers: *workers})
	if err != nil {
		return err
	}
	defer c.Stop()
	spec, err := jobspec.Override(jobspec.BabyGPT(), []string{"data.path=" + abs, "train.max_iters=1000000",
		"train.lr_decay_iters=1000000", "train.eval_interval=0", "checkpoint.interval=1000000"})
	if err != nil {
		return err
	}
	cl := c.Client()
	defer cl.Close()
	job, err := cl.SubmitJob(ctx, spec.Marshal())
	if err != nil {
		return err
	}
	base := "http://" + c.HTTPAddrs[0]
	// The step comes from the leader's latest heartbeats (every 500 ms), not
	// from the API's 1 s samples, so a phase's ends are at most 0.5 s stale.
	step := func() (int64, error) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		r, err := cl.GetJob(rctx, job.Id)
		if err != nil {
			return 0, err
		}
		var s int64
		for _, m := range r.Progress {
			s = max(s, m.GetStep())
		}
		return s, nil
	}
	for deadline := time.Now().Add(2 * time.Minute); ; { // warm up: training under way
		s, err := step()
		if err == nil && s >= 20 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("job %s made no progress in 2 minutes (last step %d, err %v)", job.Id, s, err)
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	fmt.Printf("baby GPT on %d worker(s), phases of %v, page polling every %v\n", *workers, *phase, *poll)
	var closed, open []float64
	for i := range 2 * *pairs {
		isOpen := (i%2 == 0) == (i/2%2 == 1) // closed,open, open,closed, closed,open, ...
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		if isOpen {
			go func() { // owned here: ends with the phase
				defer close(done)
				t := time.NewTicker(*poll)
				defer t.Stop()
				for {
					for _, p := range []string{"/api/v1/cluster", "/api/v1/jobs", "/api/v1/jobs/" + job.Id} {
						if resp, err := http.Get(base + p); err == nil {
							var v any
							_ = json.NewDecoder(resp.Body).Decode(&v)
							resp.Body.Close()
						}
					}
					select {
					case <-pctx.Done():
						return
					case <-t.C:
					}
				}
			}()
		} else {
			close(done)
		}
		s0, err := step()
		if err != nil {
			stop()
			return err
		}
		t0 := time.Now()
		time.Sleep(*phase) // the measured phase
		s1, err := step()
		el := time.Since(t0)
		stop()
		<-done
		if err != nil {
			return err
		}
		if s1 <= s0 {
			return fmt.Errorf("phase %d: no steps (%d → %d)", i, s0, s1)
		}
		ms := el.Seconds() * 1000 / float64(s1-s0)
		name := "closed"
		if isOpen {
			name = "open"
			open = append(open, ms)
		} else {
			closed = append(closed, ms)
		}
		fmt.Printf("phase %2d %-6s %5d steps  %.2f ms/step\n", i, name, s1-s0, ms)
	}
	mc, mo := median(closed), median(open)
	fmt.Printf("median ms/step: closed %.2f  open %.2f  ratio open/closed %.3f (min..max closed %.2f..%.2f, open %.2f..%.2f)\n",
		mc, mo, mo/mc, slices.Min(closed), slices.Max(closed), slices.Min(open), slices.Max(open))
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
