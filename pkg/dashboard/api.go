package dashboard

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"sort"
	"strconv"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

//go:embed static
var static embed.FS

// Member is one coordinator of the raft group.
type Member struct {
	ID       string `json:"id"`
	Raft     string `json:"raft_address"`
	GRPC     string `json:"grpc_address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Worker is one registered worker.
type Worker struct {
	ID      string   `json:"id"`
	Address string   `json:"address"`
	State   string   `json:"state"`
	Reason  string   `json:"reason,omitempty"`
	Job     string   `json:"job,omitempty"`
	Cores   int32    `json:"cores"`
	AgeSec  *float64 `json:"heartbeat_age_seconds"` // null off the leader or when never heard
}

// Cluster is GET /api/v1/cluster.
type Cluster struct {
	Node      string   `json:"node"`
	RaftState string   `json:"raft_state"`
	Leader    string   `json:"leader"`
	Term      uint64   `json:"term"`
	Applied   uint64   `json:"applied_index"`
	Members   []Member `json:"members"`
	Workers   []Worker `json:"workers"`
}

// JobSummary is one entry of GET /api/v1/jobs.
type JobSummary struct {
	ID            string `json:"id"`
	State         string `json:"state"`
	Reason        string `json:"reason,omitempty"`
	Generation    uint64 `json:"generation"`
	CommittedStep int64  `json:"committed_step"`
	Step          int64  `json:"step"`
	MaxSteps      int    `json:"max_steps"`
	SubmittedMs   int64  `json:"submitted_unix_ms"`
}

// RankRow is one row of a job's rank table.
type RankRow struct {
	Rank         int32   `json:"rank"`
	Worker       string  `json:"worker"`
	Address      string  `json:"address"`
	DP           int32   `json:"dp"`
	TP           int32   `json:"tp"`
	Reported     bool    `json:"reported"` // step, loss and tokens/s are from a heartbeat of this generation
	Step         int64   `json:"step"`
	Loss         float64 `json:"loss"`
	TokensPerSec float64 `json:"tokens_per_sec"`
	// StepSec is the rank's recent median step time from its heartbeat
	// (older workers: estimated between samples; null until two).
	StepSec *float64 `json:"step_seconds"`
	// Straggler is the rank's compute time over its DP group's median, as
	// the leader exports it (coord.StragglerScores).
	Straggler *float64 `json:"straggler_score"`
	AgeSec    *float64 `json:"heartbeat_age_seconds"`
}

// Checkpoint is one committed checkpoint.
type Checkpoint struct {
	Step       int64               `json:"step"`
	Generation uint64              `json:"generation"`
	Final      bool                `json:"final"`
	Holders    map[string][]string `json:"holders"` // "tp0" → worker ids
}

// JobDetail is GET /api/v1/jobs/{id}.
type JobDetail struct {
	JobSummary
	DPSize      int32        `json:"dp_size"`
	TPSize      int32        `json:"tp_size"`
	Ranks       []RankRow    `json:"ranks"`
	Checkpoints []Checkpoint `json:"checkpoints"`
	Events      []Event      `json:"events"`
	Points      []Point      `json:"points"`
	ETASec      *float64     `json:"eta_seconds"`
}

// Handler serves / (the page) and /api/v1/.
func Handler(r *Recorder) http.Handler {
	mux := http.NewServeMux()
	sub, _ := fs.Sub(static, "static") // cannot fail: the directory is embedded
	mux.Handle("GET /", http.FileServerFS(sub))
	mux.HandleFunc("GET /api/v1/cluster", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, r.Cluster()) })
	mux.HandleFunc("GET /api/v1/jobs", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, r.Jobs()) })
	mux.HandleFunc("GET /api/v1/jobs/{id}", func(w http.ResponseWriter, req *http.Request) {
		d, ok := r.Job(req.PathValue("id"))
		if !ok {
			http.Error(w, `{"error":"no such job"}`, http.StatusNotFound)
			return
		}
		writeJSON(w, d)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func ptr(f float64) *float64 { return &f }

func (r *Recorder) ages() map[string]float64 {
	out := map[string]float64{}
	if !r.cfg.Node.IsLeader() {
		return out
	}
	for _, h := range r.cfg.Node.MetricsSnapshot().Heartbeats {
		out[h.Worker] = h.Age.Seconds()
	}
	return out
}

// Cluster is the raft group and the workers.
func (r *Recorder) Cluster() Cluster {
	s := r.cfg.Node.Status()
	c := Cluster{Node: s.NodeId, RaftState: s.RaftState, Leader: s.LeaderId, Term: s.Term, Applied: s.AppliedIndex,
		Members: []Member{}, Workers: []Worker{}}
	for _, m := range s.Members {
		c.Members = append(c.Members, Member{ID: m.Id, Raft: m.RaftAddress, GRPC: m.GrpcAddress, Suffrage: m.Suffrage, Leader: m.Leader})
	}
	ages := r.ages()
	r.cfg.Node.FSM().Read(func(st *pb.ClusterState) {
		for _, w := range st.Workers {
			wk := Worker{ID: w.Id, Address: w.Address, State: "alive", Reason: w.Reason, Job: w.JobId, Cores: w.Cores}
			if w.State != pb.WorkerState_WORKER_STATE_ALIVE {
				wk.State = "lost"
			}
			if a, ok := ages[w.Id]; ok {
				wk.AgeSec = ptr(a)
			}
			c.Workers = append(c.Workers, wk)
		}
	})
	sort.Slice(c.Workers, func(a, b int) bool { return c.Workers[a].ID < c.Workers[b].ID })
	return c
}

func (r *Recorder) summary(j *pb.Job) JobSummary {
	s := JobSummary{ID: j.Id, State: coord.StateName(j.State), Reason: j.Reason, Generation: j.Generation,
		CommittedStep: j.CommittedStep, Step: j.CommittedStep, SubmittedMs: j.SubmittedUnixMs}
	if spec, err := coord.JobSpec(j); err == nil {
		s.MaxSteps = spec.Train.MaxIters
	}
	r.mu.Lock()
	if h := r.job[j.Id]; h != nil && len(h.points) > 0 {
		s.Step = max(s.Step, h.points[len(h.points)-1].Step)
	}
	r.mu.Unlock()
	if j.State == pb.JobState_JOB_STATE_COMPLETED {
		s.Step = max(s.Step, int64(s.MaxSteps))
	}
	return s
}

// Jobs lists jobs, newest first.
func (r *Recorder) Jobs() []JobSummary {
	var jobs []*pb.Job
	r.cfg.Node.FSM().Read(func(st *pb.ClusterState) {
		for _, j := range st.Jobs {
			jobs = append(jobs, j)
		}
	})
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Seq > jobs[b].Seq })
	out := []JobSummary{}
	for _, j := range jobs {
		out = append(out, r.summary(j))
	}
	return out
}

// Job is one job's detail; false when there is no such job.
func (r *Recorder) Job(id string) (JobDetail, bool) {
	var j *pb.Job
	var g *pb.Generation
	var cks []*pb.Checkpoint
	r.cfg.Node.FSM().Read(func(st *pb.ClusterState) {
		j, g = st.Jobs[id], st.Generations[id] // replaced on change, never mutated
		if l := st.Checkpoints[id]; l != nil {
			cks = append(cks, l.Items...)
		}
	})
	if j == nil {
		return JobDetail{}, false
	}
	d := JobDetail{JobSummary: r.summary(j), Ranks: []RankRow{}, Checkpoints: []Checkpoint{}}
	for _, c := range cks {
		ck := Checkpoint{Step: c.Step, Generation: c.Generation, Final: c.Final, Holders: map[string][]string{}}
		for _, s := range c.Shards {
			ck.Holders["tp"+strconv.Itoa(int(s.Tp))] = s.WorkerIds
		}
		d.Checkpoints = append(d.Checkpoints, ck)
	}
	h := r.snapshot(id)
	d.Events, d.Points = h.events, h.points
	if d.Events == nil {
		d.Events = []Event{}
	}
	if d.Points == nil {
		d.Points = []Point{}
	}
	if g != nil && !coord.Terminal(j.State) {
		d.DPSize, d.TPSize = g.DpSize, g.TpSize
		ages := r.ages()
		byWorker := map[string]*pb.WorkerMessage{}
		for id, m := range h.progress {
			if m.Generation == g.Number {
				byWorker[id] = m
			}
		}
		stepSec := func(id string) (float64, bool) {
			if m := byWorker[id]; m != nil && m.StepSeconds > 0 {
				return m.StepSeconds, true
			}
			s, ok := h.stepSec[id]
			return s, ok
		}
		var times []float64
		heard := make([]*pb.WorkerMessage, len(g.Ranks))
		for i, rk := range g.Ranks {
			if s, ok := stepSec(rk.WorkerId); ok {
				times = append(times, s)
			}
			heard[i] = byWorker[rk.WorkerId]
		}
		med := median(times)
		scores := coord.StragglerScores(g, heard)
		for i, rk := range g.Ranks {
			row := RankRow{Rank: rk.Rank, Worker: rk.WorkerId, Address: rk.Address, DP: rk.Dp, TP: rk.Tp}
			if m := byWorker[rk.WorkerId]; m != nil {
				row.Reported, row.Step, row.Loss, row.TokensPerSec = true, m.Step, m.Loss, m.TokensPerSec
			}
			if s, ok := stepSec(rk.WorkerId); ok {
				row.StepSec = ptr(s)
			}
			if scores[i] > 0 {
				row.Straggler = ptr(scores[i])
			}
			if a, ok := ages[rk.WorkerId]; ok {
				row.AgeSec = ptr(a)
			}
			d.Ranks = append(d.Ranks, row)
		}
		if len(times) > 0 && d.MaxSteps > 0 && d.Step < int64(d.MaxSteps) {
			d.ETASec = ptr(med * float64(int64(d.MaxSteps)-d.Step))
		}
	}
	return d, true
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
