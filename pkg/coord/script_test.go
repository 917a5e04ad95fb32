package coord

import (
	"bufio"
	"cmp"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt expectations with the actual output")

// TestScripts runs testdata/*.txt: data-driven conversations with the
// scheduler and failure detector over a Store (no raft, no clock). Each
// block is a command, "----", and the expected output, ended by a blank line.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScript(t, f) })
	}
}

type scriptBlock struct {
	cmd, want string
	line      int
}

func parseScript(t *testing.T, path string) []scriptBlock {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []scriptBlock
	sc := bufio.NewScanner(fh)
	var cur *scriptBlock
	inWant := false
	ln := 0
	for sc.Scan() {
		ln++
		l := sc.Text()
		switch {
		case cur == nil && (strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#")):
		case cur == nil:
			out = append(out, scriptBlock{cmd: l, line: ln})
			cur = &out[len(out)-1]
		case !inWant && l == "----":
			inWant = true
		case !inWant:
			t.Fatalf("%s:%d: want ---- after command", path, ln)
		case l == "":
			cur, inWant = nil, false
		default:
			cur.want += l + "\n"
		}
	}
	return out
}

type scriptEnv struct {
	t   *testing.T
	s   *Store
	det *Detector
	t0  time.Time
	now int64
}

func runScript(t *testing.T, path string) {
	blocks := parseScript(t, path)
	env := &scriptEnv{t: t, s: NewStore(), det: NewDetector(3*time.Second, 3*time.Second), t0: time.Unix(1_000_000, 0)}
	var rewritten strings.Builder
	for _, b := range blocks {
		got := env.exec(b.cmd)
		if *rewrite {
			fmt.Fprintf(&rewritten, "%s\n----\n%s\n", b.cmd, got)
			continue
		}
		if got != b.want {
			t.Errorf("%s:%d: %s\ngot:\n%swant:\n%s", path, b.line, b.cmd, got, b.want)
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(rewritten.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func kv(args []string) (map[string]string, []string) {
	m := map[string]string{}
	var pos []string
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			m[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	return m, pos
}

func (e *scriptEnv) at(m map[string]string) time.Time {
	d, err := time.ParseDuration(m["t"])
	if err != nil {
		e.t.Fatalf("bad t=%q: %v", m["t"], err)
	}
	return e.t0.Add(d)
}

func (e *scriptEnv) apply(c *pb.Command) error {
	e.now++
	c.UnixMs = e.now
	_, err := e.s.Apply(c)
	return err
}

func atoi(s string, def int) int {
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func (e *scriptEnv) exec(line string) string {
	f := strings.Fields(line)
	m, pos := kv(f[1:])
	var out strings.Builder
	errOut := func(err error) string {
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		return "ok\n"
	}
	switch f[0] {
	case "submit":
		spec := jobspec.Default()
		spec.Parallel.TP = atoi(m["tp"], 1)
		spec.Parallel.MinWorkers = atoi(m["min"], 0)
		spec.Parallel.MaxWorkers = atoi(m["max"], 0)
		spec.Parallel.ScaleUp = m["scale"]
		spec.Parallel.WaitTimeout = m["wait"]
		spec.Train.BatchSize = atoi(m["batch"], 8)
		spec = spec.WithDefaults()
		if err := spec.Validate(); err != nil {
			return errOut(err)
		}
		return errOut(e.apply(&pb.Command{Cmd: &pb.Command_SubmitJob{SubmitJob: &pb.SubmitJobCmd{JobId: m["id"], SpecJson: spec.Marshal()}}}))
	case "register", "rejoin":
		for _, id := range pos {
			err := e.apply(&pb.Command{Cmd: &pb.Command_RegisterWorker{RegisterWorker: &pb.RegisterWorkerCmd{Worker: &pb.Worker{
				Id: id, Address: cmp.Or(m["addr"], id+":9000"), Cores: 2, ProtocolVersion: ProtocolVersion}}}})
			fmt.Fprintf(&out, "%s: %s", id, errOut(err))
			if t, ok := m["t"]; ok && t != "" {
				e.det.Heartbeat(e.at(m), id)
			}
		}
		return out.String()
	case "reset": // a new leader: fresh clocks with grace for all alive workers
		var alive []string
		for _, w := range SortedWorkers(e.s.State()) {
			if w.State == pb.WorkerState_WORKER_STATE_ALIVE {
				alive = append(alive, w.Id)
			}
		}
		e.det.Reset(e.at(m), alive)
		return "watching " + strings.Join(alive, " ") + "\n"
	case "hb":
		for _, id := range pos {
			e.det.Heartbeat(e.at(m), id)
		}
		return "ok\n"
	case "tick": // the leader loop at time t: detector, wait timeouts, then scheduler
		now := e.at(m)
		e.now = max(e.now, now.UnixMilli()) // commands are stamped with the leader's clock
		for _, w := range SortedWorkers(e.s.State()) {
			if w.State == pb.WorkerState_WORKER_STATE_ALIVE {
				e.det.Watch(now, w.Id)
			} else {
				e.det.Forget(w.Id)
			}
		}
		for _, id := range e.det.Expired(now) {
			err := e.apply(&pb.Command{Cmd: &pb.Command_SetWorkerState{SetWorkerState: &pb.SetWorkerStateCmd{
				WorkerId: id, State: pb.WorkerState_WORKER_STATE_LOST, Reason: "no heartbeat"}}})
			fmt.Fprintf(&out, "lost %s: %s", id, errOut(err))
			e.det.Forget(id)
		}
		for _, c := range WaitExpired(e.s.State(), now) {
			sc := c.GetSetJobState()
			fmt.Fprintf(&out, "fail %s: %s\n", sc.JobId, sc.Reason)
			if err := e.apply(c); err != nil {
				fmt.Fprintf(&out, "error: %v\n", err)
			}
		}
		out.WriteString(e.plan())
		return out.String()
	case "unreachable":
		for _, id := range pos {
			err := e.apply(&pb.Command{Cmd: &pb.Command_SetWorkerState{SetWorkerState: &pb.SetWorkerStateCmd{
				WorkerId: id, State: pb.WorkerState_WORKER_STATE_LOST, Reason: "reported unreachable"}}})
			fmt.Fprintf(&out, "lost %s: %s", id, errOut(err))
		}
		return out.String()
	case "plan":
		return e.plan()
	case "checkpoint": // every shard of the job's current generation reports step
		st := e.s.State()
		tr := NewCheckpointTracker()
		g := st.Generations[m["job"]]
		if g == nil {
			return "no generation\n"
		}
		for _, r := range g.Ranks {
			tr.Report(&pb.ReportCheckpointRequest{WorkerId: r.WorkerId, JobId: g.JobId, Generation: g.Number,
				Step: int64(atoi(m["step"], 0)), Tp: r.Tp, Final: m["final"] == "true"})
		}
		for _, c := range g.ReplicaCopies { // as the workers copy their shards
			tr.Report(&pb.ReportCheckpointRequest{WorkerId: g.Ranks[c.To].WorkerId, JobId: g.JobId, Generation: g.Number,
				Step: int64(atoi(m["step"], 0)), Tp: g.Ranks[c.From].Tp, Final: m["final"] == "true"})
		}
		ready, _ := tr.Ready(st)
		for _, ck := range ready {
			err := e.apply(&pb.Command{Cmd: &pb.Command_CommitCheckpoint{CommitCheckpoint: &pb.CommitCheckpointCmd{Checkpoint: ck}}})
			fmt.Fprintf(&out, "commit %s@%d: %s", ck.JobId, ck.Step, errOut(err))
		}
		return out.String()
	case "cancel":
		return errOut(e.apply(&pb.Command{Cmd: &pb.Command_CancelJob{CancelJob: &pb.CancelJobCmd{JobId: pos[0]}}}))
	case "state":
		return dumpState(e.s.State())
	}
	e.t.Fatalf("unknown script command %q", f[0])
	return ""
}

// plan runs the scheduler to a fixed point, printing each command.
func (e *scriptEnv) plan() string {
	var out strings.Builder
	for round := 0; ; round++ {
		if round > 10 {
			e.t.Fatal("scheduler does not settle")
		}
		cmds := Plan(e.s.State())
		if len(cmds) == 0 {
			break
		}
		for _, c := range cmds {
			e.now++
			c.UnixMs = e.now
			msg, err := e.s.Apply(c)
			if err != nil {
				fmt.Fprintf(&out, "error: %v\n", err)
				continue
			}
			switch x := msg.(type) {
			case *pb.Generation:
				out.WriteString(dumpGeneration(x))
			case *pb.Job:
				fmt.Fprintf(&out, "%s %s: %s\n", x.Id, StateName(x.State), x.Reason)
			}
		}
	}
	if out.Len() == 0 {
		return "settled\n"
	}
	return out.String()
}

func dumpGeneration(g *pb.Generation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gen %d %s dp=%d tp=%d batch=%d resume=%d (%s)\n", g.Number, g.JobId, g.DpSize, g.TpSize, g.GlobalBatch, g.ResumeStep, g.Reason)
	for _, r := range g.Ranks {
		fmt.Fprintf(&b, "  rank %d %s dp=%d tp=%d rows=[%d,+%d)\n", r.Rank, r.WorkerId, r.Dp, r.Tp, r.BatchOffset, r.BatchRows)
	}
	for _, h := range g.ResumeFrom {
		fmt.Fprintf(&b, "  resume tp%d from %s\n", h.Tp, strings.Join(h.WorkerIds, ","))
	}
	return b.String()
}

func dumpState(st *pb.ClusterState) string {
	var b strings.Builder
	for _, j := range SortedJobs(st) {
		fmt.Fprintf(&b, "job %s %s gen=%d step=%d reason=%q\n", j.Id, StateName(j.State), j.Generation, j.CommittedStep, j.Reason)
	}
	for _, w := range SortedWorkers(st) {
		state := "alive"
		if w.State == pb.WorkerState_WORKER_STATE_LOST {
			state = "lost"
		}
		fmt.Fprintf(&b, "worker %s %s job=%q\n", w.Id, state, w.JobId)
	}
	var ids []string
	for id := range st.Generations {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		b.WriteString(dumpGeneration(st.Generations[id]))
	}
	return b.String()
}
