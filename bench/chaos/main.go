// Command chaos trains a job on a local cluster (3 coordinators, 4
// workers) while injecting faults on a seeded random schedule, then checks
// what must survive:
//
//   - the job completes;
//   - no committed checkpoint is lost (the committed step never goes back)
//     and every stored checkpoint verifies against its checksums;
//   - the final parameters are bit-identical to an uninterrupted run of the
//     same spec (run first, on the same cluster): every generation keeps the
//     layout (DP 2, two spares), so every resume must be exact;
//   - no two coordinators lead in the same term (every node polled).
//
// Faults: SIGKILL and restart of a training worker and of the raft leader,
// SIGSTOP/SIGCONT stalls of a worker and of a coordinator, a worker lost for
// good (its data dir deleted before it restarts), a worker and the leader
// killed at once, and a coordinator restarted with its data dir wiped (it
// rejoins as a new member). After each fault it waits for the job to train
// and commit a checkpoint again before the next one.
//
// Where a Docker engine answers (-runtime auto, the default), every
// coordinator and worker runs in its own container on a private Docker
// network (localcluster's container mode), and two more faults cut a
// container off the network for a while: a training worker (its peers and
// the coordinators lose it at once, its process keeps running) and the raft
// leader (the majority elects a new one; the old one must step down). With
// -runtime process they are processes on 127.0.0.1.
//
//	go run ./bench/chaos -faults 100 -seed 1
//
// It prints one line per fault and a table: faults by kind, recoveries,
// time to resume, steps replayed, violations. Exit status 1 on a violation.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
	"github.com/ringmaster-ml/ringmaster/pkg/model/safetensors"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

// faultKind is a kind of fault and its weight in the random schedule.
type faultKind struct {
	name   string
	weight int
}

// processFaults work on processes and containers alike.
var processFaults = []faultKind{
	{"worker-kill", 3}, {"leader-kill", 2}, {"worker-stall", 2}, {"coordinator-stall", 1},
	{"worker-lost", 1}, {"worker+leader-kill", 1}, {"coordinator-wipe", 1},
}

// networkFaults need containers (a network of their own to be cut from).
var networkFaults = []faultKind{{"worker-disconnect", 2}, {"leader-disconnect", 1}}

type chaos struct {
	c      *localcluster.Cluster
	kinds  []faultKind
	cl     *coord.Client
	dir    string
	rng    *rand.Rand
	job    string
	logf   func(format string, a ...any)
	faults map[string]int
	// highest is the highest committed step the run has seen.
	highest int64

	mu         sync.Mutex
	violations []string
}

func (ch *chaos) violate(format string, a ...any) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	v := fmt.Sprintf(format, a...)
	ch.violations = append(ch.violations, v)
	fmt.Println("VIOLATION:", v)
}

func run() error {
	faults := flag.Int("faults", 100, "faults to inject")
	seed := flag.Uint64("seed", 1, "seed of the fault schedule (the same seed gives the same schedule)")
	stepsPerFault := flag.Int("steps-per-fault", 8000, "training steps of the job per fault (max_iters = faults × this)")
	keep := flag.Bool("keep", false, "keep the cluster directory (logs, data) instead of deleting it")
	runtime := flag.String("runtime", "auto", "where the cluster runs: containers (one per process, on a private Docker network), process (127.0.0.1), or auto (containers where a Docker engine answers)")
	flag.Parse()
	ctx := context.Background()
	var containers bool
	switch *runtime {
	case "auto":
		containers = localcluster.ContainersAvailable(ctx)
	case "containers":
		containers = true
	case "process":
	default:
		return fmt.Errorf("-runtime %q: want containers, process or auto", *runtime)
	}
	dir, err := os.MkdirTemp("", "chaos")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Println("cluster directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "bin")
	if err := localcluster.Build(ctx, root, bin); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	c, err := localcluster.Start(sctx, localcluster.Config{Dir: dir, BinDir: bin, Workers: 4, Containers: containers})
	cancel()
	if err != nil {
		return err
	}
	kinds := processFaults
	if containers {
		kinds = append(append([]faultKind{}, processFaults...), networkFaults...)
		fmt.Printf("cluster: 3 coordinators and 4 workers, each in its own container on a private Docker network (coordinators at %s)\n", strings.Join(c.CoordAddrs, " "))
	} else {
		fmt.Println("cluster: 3 coordinators and 4 workers, processes on 127.0.0.1 (-runtime process)")
	}
	defer c.Stop()
	cl := c.Client()
	defer cl.Close()
	iters := *faults * *stepsPerFault
	spec, err := jobspec.Override(jobspec.Default(), []string{"model.n_layer=1", "model.n_embd=32",
		fmt.Sprintf("train.max_iters=%d", iters), "train.warmup_iters=10", "checkpoint.interval=50",
		"train.eval_interval=0", "train.log_interval=1000", "train.held_out=50", "train.max_restarts=1000",
		"parallel.min_workers=2", "parallel.max_workers=2"})
	if err != nil {
		return err
	}
	ch := &chaos{c: c, kinds: kinds, cl: cl, dir: dir, rng: rand.New(rand.NewPCG(*seed, 0x6368616f73)), faults: map[string]int{},
		logf: func(format string, a ...any) { fmt.Printf(format+"\n", a...) }}

	// The reference: the same spec, nothing injected.
	t0 := time.Now()
	ref, err := ch.submit(ctx, spec)
	if err != nil {
		return err
	}
	if err := ch.waitDone(ctx, ref, time.Duration(iters)*10*time.Millisecond+time.Minute); err != nil {
		return fmt.Errorf("reference run: %w", err)
	}
	refTime := time.Since(t0)
	rate := float64(iters) / refTime.Seconds()
	fmt.Printf("reference run: %d steps in %v (%.0f steps/s), job %s\n", iters, refTime.Round(time.Millisecond), rate, ref)

	// The chaos run.
	ch.job, err = ch.submit(ctx, spec)
	if err != nil {
		return err
	}
	mctx, stopMonitor := context.WithCancel(ctx)
	defer stopMonitor()
	var monitor sync.WaitGroup
	monitor.Add(1)
	go func() { defer monitor.Done(); ch.watchLeaders(mctx) }()
	start := time.Now()
	var resumes []time.Duration
	injected := 0
	for injected < *faults {
		g, committed, err := ch.settle(ctx, 90*time.Second)
		if err != nil {
			ch.violate("fault %d: did not recover: %v", injected, err)
			break
		}
		if committed >= int64(iters) {
			fmt.Printf("the job reached its last step after %d faults; raise -steps-per-fault for more\n", injected)
			break
		}
		// Spread the remaining faults over the remaining steps.
		left := float64(int64(iters)-committed) / rate
		gap := time.Duration(left / float64(*faults-injected+1) * float64(time.Second) * 0.3)
		time.Sleep(min(max(gap, 200*time.Millisecond), 5*time.Second)) // pacing, not synchronization
		kind := ch.pick()
		injected++
		ch.faults[kind]++
		at := time.Now()
		what, err := ch.inject(ctx, kind, g)
		if err != nil {
			return fmt.Errorf("fault %d (%s): %w", injected, kind, err)
		}
		d, gen, err := ch.resumed(ctx, g.Number, at, 90*time.Second)
		line := fmt.Sprintf("fault %3d %-19s %-44s", injected, kind, what)
		switch {
		case err != nil:
			line += " generation kept (no new one within 90 s)"
		case gen > g.Number:
			resumes = append(resumes, d)
			line += fmt.Sprintf(" generation %d → %d, training again after %v", g.Number, gen, d.Round(time.Millisecond))
		default:
			line += " generation kept"
		}
		fmt.Println(line)
	}
	if err := ch.waitDone(ctx, ch.job, 10*time.Minute); err != nil {
		ch.violate("chaos job: %v", err)
	}
	chaosTime := time.Since(start)
	stopMonitor()
	monitor.Wait()

	ch.compareModels(ref)
	c.Stop()
	ch.verifyStores()
	ch.report(*seed, injected, chaosTime, resumes)
	if len(ch.violations) > 0 {
		return fmt.Errorf("%d violation(s)", len(ch.violations))
	}
	return nil
}

func (ch *chaos) submit(ctx context.Context, spec jobspec.Spec) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	j, err := ch.cl.SubmitJob(sctx, spec.Marshal())
	if err != nil {
		return "", fmt.Errorf("submit: %w", err)
	}
	return j.Id, nil
}

func (ch *chaos) pick() string {
	total := 0
	for _, k := range ch.kinds {
		total += k.weight
	}
	n := ch.rng.IntN(total)
	for _, k := range ch.kinds {
		if n < k.weight {
			return k.name
		}
		n -= k.weight
	}
	panic("unreachable")
}

// getJob reads the job, retrying through elections.
func (ch *chaos) getJob(ctx context.Context, job string) (*pb.GetJobResponse, error) {
	var last error
	for range 20 {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := ch.cl.GetJob(actx, job)
		cancel()
		if err == nil {
			return r, nil
		}
		last = err
		time.Sleep(100 * time.Millisecond) // retry interval during an election
	}
	return nil, last
}

func (ch *chaos) waitDone(ctx context.Context, job string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		r, err := ch.getJob(ctx, job)
		if err == nil {
			switch r.Job.State {
			case pb.JobState_JOB_STATE_COMPLETED:
				return nil
			case pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_CANCELLED:
				return fmt.Errorf("job %s ended %s: %s", job, r.Job.State, r.Job.Reason)
			}
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	return fmt.Errorf("job %s not completed within %v", job, limit)
}

// settle waits until every process runs, the group has a leader with three
// voters, every worker is alive, and the job runs a 2-rank generation that
// has committed a checkpoint. It returns the generation and the committed
// step, and checks that the committed step never went back.
func (ch *chaos) settle(ctx context.Context, limit time.Duration) (*pb.Generation, int64, error) {
	deadline := time.Now().Add(limit)
	var why string
	for time.Now().Before(deadline) {
		why = ch.settled(ctx)
		if why == "" {
			r, err := ch.getJob(ctx, ch.job)
			if err == nil && r.Job.State == pb.JobState_JOB_STATE_COMPLETED {
				return r.Generation, math.MaxInt64, nil
			}
			if err == nil && r.Generation != nil {
				step := committedStep(r)
				if step > r.Generation.ResumeStep {
					ch.checkCommitted(step)
					return r.Generation, step, nil
				}
				why = fmt.Sprintf("generation %d has committed nothing past its resume step %d yet", r.Generation.Number, r.Generation.ResumeStep)
			}
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	return nil, 0, errors.New(why)
}

func (ch *chaos) settled(ctx context.Context) string {
	for _, p := range ch.c.Procs() {
		if !p.Running() {
			return p.Name + " is not running"
		}
	}
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := ch.cl.Status(actx)
	if err != nil {
		return "status: " + err.Error()
	}
	voters := 0
	for _, m := range st.Members {
		if m.Suffrage == "voter" {
			voters++
		}
	}
	if st.LeaderId == "" || voters != 3 {
		return fmt.Sprintf("coordinators: leader %q, %d voters", st.LeaderId, voters)
	}
	ws, err := ch.cl.ListWorkers(actx)
	if err != nil {
		return "workers: " + err.Error()
	}
	alive := 0
	for _, w := range ws {
		if w.State == pb.WorkerState_WORKER_STATE_ALIVE {
			alive++
		}
	}
	if alive != len(ch.c.Workers) {
		return fmt.Sprintf("%d of %d workers alive", alive, len(ch.c.Workers))
	}
	r, err := ch.cl.GetJob(actx, ch.job)
	if err != nil {
		return "job: " + err.Error()
	}
	if r.Job.State == pb.JobState_JOB_STATE_COMPLETED {
		return ""
	}
	if r.Job.State != pb.JobState_JOB_STATE_RUNNING || r.Generation == nil || len(r.Generation.Ranks) != 2 {
		return fmt.Sprintf("job %s (%s)", r.Job.State, r.Job.Reason)
	}
	return ""
}

func committedStep(r *pb.GetJobResponse) int64 {
	var s int64
	for _, c := range r.Checkpoints {
		s = max(s, c.Step)
	}
	return s
}

// checkCommitted records the highest committed step seen; a later read
// below it is a lost commit (confirmed by a second read, in case the first
// was a stale one).
func (ch *chaos) checkCommitted(step int64) {
	if step >= ch.highest {
		ch.highest = step
		return
	}
	time.Sleep(2 * time.Second) // give a lagging reader time; this is the check's grace, not synchronization
	r, err := ch.getJob(context.Background(), ch.job)
	if err == nil && committedStep(r) < ch.highest {
		ch.violate("committed checkpoint lost: the job's latest committed step went from %d back to %d", ch.highest, committedStep(r))
	}
}

func (ch *chaos) proc(name string) *localcluster.Proc {
	for _, p := range ch.c.Procs() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (ch *chaos) leader(ctx context.Context) (*localcluster.Proc, error) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := ch.cl.Status(actx)
	if err != nil {
		return nil, err
	}
	if p := ch.proc(st.LeaderId); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("no leader (status from %s)", st.NodeId)
}

func (ch *chaos) kill(p *localcluster.Proc) {
	p.Signal(syscall.SIGKILL)
	p.Wait()
}

// inject applies one fault and returns what it did. Restarts are started
// before it returns; stalls end before it returns.
func (ch *chaos) inject(ctx context.Context, kind string, g *pb.Generation) (string, error) {
	member := ch.proc(g.Ranks[ch.rng.IntN(len(g.Ranks))].WorkerId)
	coordinator := ch.c.Coordinators[ch.rng.IntN(len(ch.c.Coordinators))]
	pause := time.Duration(500+ch.rng.IntN(4500)) * time.Millisecond
	restartAfter := time.Duration(ch.rng.IntN(1000)) * time.Millisecond
	switch kind {
	case "worker-kill", "worker-lost":
		ch.kill(member)
		what := "SIGKILL " + member.Name
		if kind == "worker-lost" {
			if err := os.RemoveAll(filepath.Join(ch.dir, member.Name)); err != nil {
				return "", err
			}
			what += ", data dir deleted"
		}
		time.Sleep(restartAfter) // the fault's shape: down for this long
		return what, ch.c.Restart(member)
	case "leader-kill", "worker+leader-kill":
		l, err := ch.leader(ctx)
		if err != nil {
			return "", err
		}
		what := "SIGKILL leader " + l.Name
		if kind == "worker+leader-kill" {
			member.Signal(syscall.SIGKILL)
			what += " and " + member.Name
		}
		ch.kill(l)
		if kind == "worker+leader-kill" {
			member.Wait()
		}
		time.Sleep(restartAfter) // the fault's shape
		if err := ch.c.Restart(l); err != nil {
			return "", err
		}
		if kind == "worker+leader-kill" {
			return what, ch.c.Restart(member)
		}
		return what, nil
	case "worker-stall", "coordinator-stall":
		p := member
		if kind == "coordinator-stall" {
			p = coordinator
		}
		p.Signal(syscall.SIGSTOP)
		time.Sleep(pause) // the fault's shape: stopped for this long
		p.Signal(syscall.SIGCONT)
		return fmt.Sprintf("SIGSTOP %s for %v", p.Name, pause.Round(time.Millisecond)), nil
	case "coordinator-wipe":
		ch.kill(coordinator)
		if err := os.RemoveAll(filepath.Join(ch.dir, coordinator.Name)); err != nil {
			return "", err
		}
		time.Sleep(restartAfter) // the fault's shape
		return "SIGKILL " + coordinator.Name + ", data dir wiped", ch.c.Restart(coordinator)
	case "worker-disconnect", "leader-disconnect":
		p := member
		if kind == "leader-disconnect" {
			l, err := ch.leader(ctx)
			if err != nil {
				return "", err
			}
			p = l
		}
		if err := ch.c.Disconnect(p); err != nil {
			return "", err
		}
		time.Sleep(pause) // the fault's shape: off the network for this long
		if err := ch.c.Reconnect(p); err != nil {
			return "", err
		}
		return fmt.Sprintf("cut %s off the network for %v", p.Name, pause.Round(time.Millisecond)), nil
	}
	return "", fmt.Errorf("unknown fault %q", kind)
}

// resumed waits for the first step logged by a generation newer than gen
// after at, and returns how long after at it came. A fault the job rode out
// (a short stall) keeps the generation: then it returns an error once the
// cluster has settled on gen.
func (ch *chaos) resumed(ctx context.Context, gen uint64, at time.Time, limit time.Duration) (time.Duration, uint64, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		r, err := ch.getJob(ctx, ch.job)
		if err != nil {
			return 0, 0, err
		}
		if r.Job.State == pb.JobState_JOB_STATE_COMPLETED {
			return 0, gen, nil
		}
		if r.Generation != nil && r.Generation.Number > gen {
			if t, ok := ch.firstStep(r.Generation.Number, at); ok {
				return t.Sub(at), r.Generation.Number, nil
			}
		} else if r.Generation != nil && ch.settled(ctx) == "" && committedStep(r) > r.Generation.ResumeStep && time.Since(at) > 10*time.Second {
			return 0, gen, nil // rode it out
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	return 0, 0, fmt.Errorf("no new generation within %v", limit)
}

// firstStep scans the workers' logs for a "recovered" line of generation
// gen (logged with the first step a generation completes) after at.
func (ch *chaos) firstStep(gen uint64, at time.Time) (time.Time, bool) {
	var best time.Time
	for _, w := range ch.c.Workers {
		for _, l := range logLines(w.Log, "msg=recovered") {
			if l.generation == gen && l.time.After(at) && (best.IsZero() || l.time.Before(best)) {
				best = l.time
			}
		}
	}
	return best, !best.IsZero()
}

type logLine struct {
	time       time.Time
	generation uint64
	fields     map[string]string
}

func logLines(path, match string) []logLine {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), match) {
			continue
		}
		l := logLine{fields: map[string]string{}}
		for _, field := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(field, "=")
			l.fields[k] = v
			switch k {
			case "time":
				l.time, _ = time.Parse(time.RFC3339Nano, v)
			case "generation":
				l.generation, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		out = append(out, l)
	}
	return out
}

// watchLeaders polls every coordinator and records which node says it leads
// in which term: two leaders in one term is a split brain.
func (ch *chaos) watchLeaders(ctx context.Context) {
	leaders := map[uint64]string{}
	reported := map[uint64]bool{}
	for ctx.Err() == nil {
		for _, addr := range ch.c.CoordAddrs {
			actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			st, err := ch.cl.StatusAt(actx, addr)
			cancel()
			if err != nil || st.RaftState != "Leader" {
				continue
			}
			if prev, ok := leaders[st.Term]; ok && prev != st.NodeId && !reported[st.Term] {
				reported[st.Term] = true
				ch.violate("two leaders in term %d: %s and %s", st.Term, prev, st.NodeId)
			}
			leaders[st.Term] = st.NodeId
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// compareModels checks the chaos job's saved parameters against the
// reference's, bit for bit.
func (ch *chaos) compareModels(ref string) {
	a, err := safetensors.ReadFile(filepath.Join(ch.c.ModelDir(ref), train.WeightsFile))
	if err != nil {
		ch.violate("reference model: %v", err)
		return
	}
	b, err := safetensors.ReadFile(filepath.Join(ch.c.ModelDir(ch.job), train.WeightsFile))
	if err != nil {
		ch.violate("chaos job's model: %v", err)
		return
	}
	differ, worst := 0, 0.0
	for _, t := range a.Tensors {
		u, ok := b.Get(t.Name)
		if !ok || len(u.Data) != len(t.Data) {
			ch.violate("chaos job's model lacks %s or has another shape", t.Name)
			return
		}
		for i := range t.Data {
			if math.Float32bits(t.Data[i]) != math.Float32bits(u.Data[i]) {
				differ++
				worst = max(worst, math.Abs(float64(t.Data[i]-u.Data[i])))
			}
		}
	}
	if differ > 0 {
		ch.violate("final parameters differ from the uninterrupted run's: %d values, max |Δ| %.3g", differ, worst)
		return
	}
	fmt.Printf("final parameters: bit-identical to the uninterrupted run (%d tensors)\n", len(a.Tensors))
}

// verifyStores opens every worker's checkpoint file (the cluster is
// stopped) and verifies every checkpoint it holds.
func (ch *chaos) verifyStores() {
	n := 0
	for _, w := range ch.c.Workers {
		path := filepath.Join(ch.dir, w.Name, "checkpoints.db")
		if _, err := os.Stat(path); err != nil {
			continue
		}
		st, err := ckpt.Open(path, ckpt.Options{})
		if err != nil {
			ch.violate("%s: %v", w.Name, err)
			continue
		}
		jobs, err := st.Jobs()
		if err != nil {
			ch.violate("%s: %v", w.Name, err)
		}
		for _, j := range jobs {
			infos, err := st.List(j)
			if err != nil {
				ch.violate("%s: list %s: %v", w.Name, j, err)
			}
			for _, in := range infos {
				if err := st.Verify(j, in.Step, in.TP); err != nil {
					ch.violate("%s: checkpoint %s step %d tp %d: %v", w.Name, j, in.Step, in.TP, err)
				}
				n++
			}
		}
		_ = st.Close()
	}
	fmt.Printf("stored checkpoints: %d verified on the workers' disks\n", n)
}

func (ch *chaos) report(seed uint64, injected int, d time.Duration, resumes []time.Duration) {
	var replayed []int
	recoveries := 0
	for _, w := range ch.c.Workers {
		for _, l := range logLines(w.Log, "msg=recovered") {
			recoveries++
			if n, err := strconv.Atoi(l.fields["steps_replayed"]); err == nil {
				replayed = append(replayed, n)
			}
		}
	}
	fmt.Printf("\nchaos run: seed %d, %d faults in %v\n", seed, injected, d.Round(time.Second))
	fmt.Println("| fault | count |")
	fmt.Println("|---|---|")
	for _, k := range ch.kinds {
		fmt.Printf("| %s | %d |\n", k.name, ch.faults[k.name])
	}
	fmt.Printf("new generations after a fault: %d; worker recoveries logged: %d\n", len(resumes), recoveries)
	if len(resumes) > 0 {
		slices.Sort(resumes)
		fmt.Printf("fault → training again: median %v, max %v\n", resumes[len(resumes)/2].Round(time.Millisecond), resumes[len(resumes)-1].Round(time.Millisecond))
	}
	if len(replayed) > 0 {
		slices.Sort(replayed)
		sum := 0
		for _, n := range replayed {
			sum += n
		}
		fmt.Printf("steps replayed per recovering rank: median %d, max %d, total %d\n", replayed[len(replayed)/2], replayed[len(replayed)-1], sum)
	}
	var loads, fetches, localBytes, fetchedBytes int64
	for _, w := range ch.c.Workers {
		for _, l := range logLines(w.Log, `msg="checkpoint loaded"`) {
			n, _ := strconv.ParseInt(l.fields["bytes"], 10, 64)
			loads++
			if l.fields["source"] == "replica" {
				fetches++
				fetchedBytes += n
			} else {
				localBytes += n
			}
		}
	}
	fmt.Printf("checkpoint loads at resume: %d (%d from a replica); bytes re-fetched from replicas: %.1f MB, loaded from local disks: %.1f MB\n",
		loads, fetches, float64(fetchedBytes)/1e6, float64(localBytes)/1e6)
	fmt.Printf("violations: %d\n", len(ch.violations))
	for _, v := range ch.violations {
		fmt.Println("  -", v)
	}
}
