//go:build linux

package localcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ringmaster-ml/ringmaster/deploy"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
)

// TestPrometheusScrapesATrainingCluster runs the real Prometheus (Debian's
// package) with the repository's config and alert rules against a local
// cluster training a DP 2 job, and checks through Prometheus's HTTP API what
// an operator relies on: every target up, one training series per rank,
// steps rising and loss falling, every alert rule loaded and evaluating,
// every Grafana panel's query parsing and returning data, and WorkerLost's
// condition turning true when a worker is SIGKILLed.
func TestPrometheusScrapesATrainingCluster(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus is not installed (apt-get install prometheus); CI must run this test")
		}
		t.Skip("prometheus not installed (apt-get install prometheus)")
	}
	c := startCluster(t, 2)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	prom := startPrometheus(t, bin, root, c)

	spec := smallSpec(t, "train.max_iters=200000", "train.eval_interval=20", "parallel.min_workers=1", "parallel.max_workers=2")
	cl, job := submit(t, c, spec)
	t.Cleanup(func() { _, _ = cl.CancelJob(context.Background(), job.Id, "test over") })
	sel := fmt.Sprintf(`{job_id=%q}`, job.Id)

	// Every target up: three coordinators, two workers.
	pollFor(t, "5 targets up", time.Minute, func() (bool, string) {
		var r struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		}
		if err := prom.get("/api/v1/targets", nil, &r); err != nil {
			return false, err.Error()
		}
		up, seen := 0, ""
		for _, tg := range r.ActiveTargets {
			seen += fmt.Sprintf(" %s/%s=%s %s", tg.Labels["job"], tg.Labels["instance"], tg.Health, tg.LastError)
			if tg.Health == "up" {
				up++
			}
		}
		return up == 5, seen
	})

	// One step series per rank, rising; the loss falls.
	var firstLoss float64
	pollFor(t, "both ranks' steps in Prometheus", time.Minute, func() (bool, string) {
		v, err := prom.query(metrics.TrainStep + sel)
		if err != nil || len(v) != 2 {
			return false, fmt.Sprint(v, err)
		}
		loss, err := prom.query("max(" + metrics.TrainLoss + sel + ")")
		if err != nil || len(loss) != 1 {
			return false, fmt.Sprint(loss, err)
		}
		firstLoss = loss[0].value
		return firstLoss > 0, fmt.Sprintf("loss %v", firstLoss)
	})
	steps, _ := prom.query(metrics.TrainStep + sel)
	ranks := map[string]float64{}
	for _, s := range steps {
		ranks[s.labels[metrics.LabelRank]] = s.value
	}
	if len(ranks) != 2 || ranks["0"] == 0 && ranks["1"] == 0 {
		t.Fatalf("step series by rank %v, want ranks 0 and 1", ranks)
	}
	pollFor(t, "steps to rise and the loss to fall", 2*time.Minute, func() (bool, string) {
		v, err := prom.query("min(" + metrics.TrainStep + sel + ")")
		if err != nil || len(v) != 1 {
			return false, fmt.Sprint(v, err)
		}
		loss, err := prom.query("max(" + metrics.TrainLoss + sel + ")")
		if err != nil || len(loss) != 1 {
			return false, fmt.Sprint(loss, err)
		}
		return v[0].value > ranks["0"]+100 && loss[0].value < 0.8*firstLoss,
			fmt.Sprintf("step %v (from %v), loss %v (from %v)", v[0].value, ranks["0"], loss[0].value, firstLoss)
	})

	// The rules are loaded and evaluate without errors.
	type rule struct {
		Name, Query, Health, LastError, Type string
	}
	rules := func() []rule {
		var r struct {
			Groups []struct {
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		if err := prom.get("/api/v1/rules", nil, &r); err != nil {
			t.Fatal(err)
		}
		var out []rule
		for _, g := range r.Groups {
			out = append(out, g.Rules...)
		}
		return out
	}
	pollFor(t, "every alert rule evaluated", time.Minute, func() (bool, string) {
		rs := rules()
		ok := len(rs) >= 7
		for _, r := range rs {
			ok = ok && r.Health == "ok"
		}
		return ok, fmt.Sprint(rs)
	})
	var workerLost string
	for _, r := range rules() {
		if r.Name == "WorkerLost" {
			workerLost = r.Query
		}
	}
	if workerLost == "" {
		t.Fatal("no WorkerLost rule loaded from deploy/alerts.yml")
	}
	if v, err := prom.query(workerLost); err != nil || len(v) != 0 {
		t.Fatalf("WorkerLost's condition holds with every worker alive: %v %v", v, err)
	}

	// A worker dies: WorkerLost's condition holds, and the board's panels
	// (peer errors and recovery included) all have data.
	c.Workers[1].Signal(syscall.SIGKILL)
	pollFor(t, "WorkerLost's condition after SIGKILL", time.Minute, func() (bool, string) {
		v, err := prom.query(workerLost)
		return err == nil && len(v) > 0, fmt.Sprint(v, err)
	})
	queries, err := deploy.BoardQueries(filepath.Join(root, "deploy", "grafana", "ringmaster.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 20 {
		t.Fatalf("the Grafana board has %d queries; want its ≥ 20 panels' queries", len(queries))
	}
	pollFor(t, "every Grafana panel query to return data", time.Minute, func() (bool, string) {
		var empty []string
		for _, q := range queries {
			q = deploy.ExpandBoardQuery(q, job.Id)
			v, err := prom.query(q)
			if err != nil {
				t.Fatalf("board query %q: %v", q, err) // does not parse or evaluate: a broken panel
			}
			if len(v) == 0 {
				empty = append(empty, q)
			}
		}
		return len(empty) == 0, fmt.Sprintf("%d of %d queries return nothing: %q", len(empty), len(queries), empty)
	})
}

type promServer struct{ base string }

// startPrometheus writes a config from deploy/prometheus.yml with the same
// jobs, rule files and settings, its targets replaced by the cluster's
// 127.0.0.1 addresses (the repo's use compose DNS names) and intervals of
// 1 s, and runs Prometheus on it until the test ends.
func startPrometheus(t *testing.T, bin, root string, c *Cluster) *promServer {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("deploy/prometheus.yml: %v", err)
	}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	var rules []string
	for _, f := range cfg["rule_files"].([]any) {
		rules = append(rules, filepath.Join(root, "deploy", f.(string)))
	}
	cfg["rule_files"] = rules
	targets := map[string][]string{"ringmaster-coordinator": c.HTTPAddrs, "ringmaster-worker": c.WorkerHTTP}
	var jobs []map[string]any
	for _, sc := range cfg["scrape_configs"].([]any) {
		name := sc.(map[string]any)["job_name"].(string)
		if targets[name] == nil {
			t.Fatalf("deploy/prometheus.yml scrapes job %q; this test knows %v", name, targets)
		}
		jobs = append(jobs, map[string]any{"job_name": name, "static_configs": []any{map[string]any{"targets": targets[name]}}})
	}
	if len(jobs) != 2 {
		t.Fatalf("deploy/prometheus.yml has %d scrape jobs, want coordinators and workers", len(jobs))
	}
	cfg["scrape_configs"] = jobs
	dir := t.TempDir()
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("--- prometheus ---\n%s", tail(string(b), 3000))
		}
	})
	p := &promServer{base: "http://" + addr}
	pollFor(t, "Prometheus ready", time.Minute, func() (bool, string) {
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return p
}

// get decodes the data of a Prometheus API response.
func (p *promServer) get(path string, q url.Values, data any) error {
	u := p.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status, Error string
		Data          json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("GET %s: %s: %w", path, resp.Status, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

type sample struct {
	labels map[string]string
	value  float64
}

// query runs an instant query and returns its vector (a scalar as one sample).
func (p *promServer) query(q string) ([]sample, error) {
	var r struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {q}}, &r); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	parse := func(v []any) float64 {
		f, _ := strconv.ParseFloat(v[1].(string), 64)
		return f
	}
	switch r.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		}
		if err := json.Unmarshal(r.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]sample, len(vec))
		for i, s := range vec {
			out[i] = sample{s.Metric, parse(s.Value)}
		}
		return out, nil
	case "scalar":
		var v []any
		if err := json.Unmarshal(r.Result, &v); err != nil {
			return nil, err
		}
		return []sample{{nil, parse(v)}}, nil
	}
	return nil, fmt.Errorf("query %s: result type %s", q, r.ResultType)
}

// pollFor calls cond every 250 ms until it holds; past the deadline the test
// fails with cond's last description.
func pollFor(t *testing.T, what string, limit time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(250 * time.Millisecond) // polling interval, not synchronisation
	}
	t.Fatalf("timed out after %v waiting for %s: %s", limit, what, last)
}
