package dashboard

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Node is what the dashboard reads from a coordinator; *coord.Node has it.
type Node interface {
	FSM() *coord.FSM
	Status() *pb.StatusResponse
	IsLeader() bool
	Progress(ranks []*pb.Rank) []*pb.WorkerMessage
	MetricsSnapshot() metrics.ControlSnapshot
}

// Point is one sample of a job's training progress.
type Point struct {
	UnixMs       int64   `json:"t"`
	Step         int64   `json:"step"`
	Generation   uint64  `json:"generation"`
	Loss         float64 `json:"loss"`
	TokensPerSec float64 `json:"tokens_per_sec"`
	// ValLoss is the latest evaluation's when the job has evaluated.
	ValLoss *float64 `json:"val_loss,omitempty"`
}

// Event is one entry of a job's timeline.
type Event struct {
	UnixMs     int64  `json:"t"`
	Kind       string `json:"kind"` // submitted, generation, checkpoint, state
	Generation uint64 `json:"generation,omitempty"`
	Step       int64  `json:"step,omitempty"`
	Text       string `json:"text"`
	Count      int    `json:"count,omitempty"`      // checkpoint events folded into this one
	FirstStep  int64  `json:"first_step,omitempty"` // of the folded checkpoints
}

// Config configures a Recorder.
type Config struct {
	Node        Node
	DialOptions []grpc.DialOption // for reading the leader's progress from a follower
	Interval    time.Duration     // progress sampling period (default 1 s)
	MaxPoints   int               // per job (default 4096)
	MaxEvents   int               // per job (default 256)
	Logger      *slog.Logger
	Now         func() time.Time
}

type rankClock struct {
	gen     uint64
	step    int64
	at      time.Time
	stepSec float64 // seconds per step between the last two samples that advanced
}

type jobHist struct {
	points   []Point
	events   []Event
	gen      uint64
	ckptStep int64
	state    pb.JobState
	progress map[string]*pb.WorkerMessage // latest sample, by worker id
	sampled  time.Time
}

// Recorder keeps the bounded progress and event history of every job.
type Recorder struct {
	cfg Config
	mu  sync.Mutex
	job map[string]*jobHist
	clk map[string]*rankClock // worker id → step clock
	wrk map[string]*pb.Worker // last seen worker records (lost-worker events)

	cliMu   sync.Mutex
	cliAddr string
	cli     *coord.Client
}

// NewRecorder returns a recorder; call Run to feed it.
func NewRecorder(cfg Config) *Recorder {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxPoints <= 0 {
		cfg.MaxPoints = 4096
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Recorder{cfg: cfg, job: map[string]*jobHist{}, clk: map[string]*rankClock{}, wrk: map[string]*pb.Worker{}}
}

// Run follows the FSM and samples progress until ctx ends.
func (r *Recorder) Run(ctx context.Context) {
	defer func() {
		r.cliMu.Lock()
		if r.cli != nil {
			_ = r.cli.Close()
		}
		r.cliMu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned here: ends with ctx
		defer wg.Done()
		for {
			st, changed := r.cfg.Node.FSM().View()
			r.Observe(st)
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.sample(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

func (r *Recorder) hist(id string) *jobHist {
	h := r.job[id]
	if h == nil {
		h = &jobHist{}
		r.job[id] = h
	}
	return h
}

// event appends e to the job's timeline. A checkpoint right after a
// checkpoint folds into it (the checkpoint table lists each one), so a job
// checkpointing every few seconds does not push its generations out.
func (r *Recorder) event(h *jobHist, e Event) {
	if n := len(h.events); n > 0 && e.Kind == "checkpoint" && h.events[n-1].Kind == "checkpoint" {
		last := &h.events[n-1]
		first := last.FirstStep
		if first == 0 {
			first = last.Step
		}
		e.Count, e.FirstStep = max(last.Count, 1)+1, first
		e.Text = fmt.Sprintf("%d checkpoints committed, steps %d…%d; latest %s", e.Count, first, e.Step, e.Text)
		*last = e
		return
	}
	h.events = append(h.events, e)
	if n := len(h.events) - r.cfg.MaxEvents; n > 0 {
		h.events = append(h.events[:0], h.events[n:]...)
	}
}

// Observe diffs one view of the replicated state against the last one and
// appends the job events it implies.
func (r *Recorder) Observe(st *pb.ClusterState) {
	now := r.cfg.Now().UnixMilli()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, j := range st.Jobs {
		h, known := r.job[id]
		if !known {
			h = r.hist(id)
			r.event(h, Event{UnixMs: j.SubmittedUnixMs, Kind: "submitted", Text: "submitted"})
			h.state = pb.JobState_JOB_STATE_UNSPECIFIED
		}
		if g := st.Generations[id]; g != nil && g.Number != h.gen {
			h.gen = g.Number
			text := fmt.Sprintf("generation %d: %d ranks (dp %d × tp %d)", g.Number, len(g.Ranks), g.DpSize, g.TpSize)
			if g.ResumeStep > 0 {
				text += fmt.Sprintf(", resume from step %d", g.ResumeStep)
			}
			if g.Reason != "" {
				text += ": " + g.Reason
			}
			r.event(h, Event{UnixMs: now, Kind: "generation", Generation: g.Number, Step: g.ResumeStep, Text: text})
		}
		if l := st.Checkpoints[id]; l != nil && len(l.Items) > 0 {
			for _, c := range l.Items {
				if c.Step <= h.ckptStep {
					continue
				}
				h.ckptStep = c.Step
				text := fmt.Sprintf("step %d committed (%s)", c.Step, holders(c.Shards))
				if c.Final {
					text = "final checkpoint " + text
				}
				if !c.Final {
					text = "checkpoint " + text
				}
				r.event(h, Event{UnixMs: now, Kind: "checkpoint", Generation: c.Generation, Step: c.Step, Text: text})
			}
		}
		if j.State != h.state {
			h.state = j.State
			text := coord.StateName(j.State)
			if j.Reason != "" {
				text += ": " + j.Reason
			}
			at := now
			if !known && j.UpdatedUnixMs > 0 {
				at = j.UpdatedUnixMs
			}
			r.event(h, Event{UnixMs: at, Kind: "state", Text: text})
		}
	}
	for id, w := range st.Workers {
		prev := r.wrk[id]
		r.wrk[id] = w // replaced on change, never mutated
		if prev == nil || prev.JobId == "" || r.job[prev.JobId] == nil {
			continue
		}
		if prev.State == pb.WorkerState_WORKER_STATE_ALIVE && w.State != pb.WorkerState_WORKER_STATE_ALIVE {
			r.event(r.job[prev.JobId], Event{UnixMs: now, Kind: "worker", Text: fmt.Sprintf("worker %s lost: %s", id, w.Reason)})
		}
	}
	for id := range r.job {
		if st.Jobs[id] == nil {
			delete(r.job, id)
		}
	}
}

func holders(shards []*pb.ShardHolders) string {
	var parts []string
	for _, s := range shards {
		parts = append(parts, fmt.Sprintf("tp%d: %s", s.Tp, strings.Join(s.WorkerIds, ",")))
	}
	return strings.Join(parts, "; ")
}

// leaderProgress reads the leader's latest progress of job's ranks.
func (r *Recorder) leaderProgress(ctx context.Context, job string, ranks []*pb.Rank) []*pb.WorkerMessage {
	if r.cfg.Node.IsLeader() {
		return r.cfg.Node.Progress(ranks)
	}
	addr := r.cfg.Node.Status().LeaderGrpcAddress
	if addr == "" {
		return nil
	}
	r.cliMu.Lock()
	if r.cliAddr != addr {
		if r.cli != nil {
			_ = r.cli.Close()
		}
		r.cli, r.cliAddr = coord.NewClient([]string{addr}, r.cfg.DialOptions...), addr
	}
	cli := r.cli
	r.cliMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Interval)
	defer cancel()
	resp, err := cli.GetJob(ctx, job)
	if err != nil {
		r.cfg.Logger.Debug("dashboard: leader progress", "job", job, "leader", addr, "err", err)
		return nil
	}
	return resp.Progress
}

// sample appends a progress point to every running job whose step moved.
func (r *Recorder) sample(ctx context.Context) {
	type run struct {
		id  string
		gen *pb.Generation
	}
	var runs []run
	r.cfg.Node.FSM().Read(func(st *pb.ClusterState) {
		for id, j := range st.Jobs {
			if j.State == pb.JobState_JOB_STATE_RUNNING && st.Generations[id] != nil {
				runs = append(runs, run{id, st.Generations[id]}) // generations are replaced, never mutated
			}
		}
	})
	for _, ru := range runs {
		msgs := r.leaderProgress(ctx, ru.id, ru.gen.Ranks)
		now := r.cfg.Now()
		r.mu.Lock()
		h := r.hist(ru.id)
		h.progress, h.sampled = map[string]*pb.WorkerMessage{}, now
		var rep *pb.WorkerMessage
		for i, m := range msgs {
			// Messages come by rank; after the first one of a session a
			// worker may leave its id out, so the rank table names it.
			if m == nil || i >= len(ru.gen.Ranks) || m.Generation != ru.gen.Number || m.Step <= 0 {
				continue
			}
			id := ru.gen.Ranks[i].WorkerId
			h.progress[id] = m
			if rep == nil || m.Step > rep.Step {
				rep = m
			}
			c := r.clk[id]
			switch {
			case c == nil || c.gen != m.Generation:
				r.clk[id] = &rankClock{gen: m.Generation, step: m.Step, at: now}
			case m.Step > c.step:
				c.stepSec = now.Sub(c.at).Seconds() / float64(m.Step-c.step)
				c.step, c.at = m.Step, now
			}
		}
		if rep != nil {
			last := Point{}
			if n := len(h.points); n > 0 {
				last = h.points[n-1]
			}
			if rep.Step != last.Step || rep.Generation != last.Generation {
				h.points = append(h.points, Point{UnixMs: now.UnixMilli(), Step: rep.Step, Generation: rep.Generation,
					Loss: rep.Loss, TokensPerSec: rep.TokensPerSec, ValLoss: rep.ValLoss})
				if n := len(h.points) - r.cfg.MaxPoints; n > 0 {
					h.points = append(h.points[:0], h.points[n:]...)
				}
			}
		}
		r.mu.Unlock()
	}
}

// snapshot is a copy of one job's history.
type snapshot struct {
	points   []Point
	events   []Event
	progress map[string]*pb.WorkerMessage // by worker id
	stepSec  map[string]float64
}

func (r *Recorder) snapshot(id string) snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.job[id]
	if h == nil {
		return snapshot{}
	}
	s := snapshot{points: append([]Point(nil), h.points...), events: append([]Event(nil), h.events...),
		progress: h.progress, stepSec: map[string]float64{}}
	for id, m := range h.progress {
		if c := r.clk[id]; c != nil && c.gen == m.Generation && c.stepSec > 0 {
			s.stepSec[id] = c.stepSec
		}
	}
	sort.SliceStable(s.events, func(a, b int) bool { return s.events[a].UnixMs < s.events[b].UnixMs })
	return s
}
