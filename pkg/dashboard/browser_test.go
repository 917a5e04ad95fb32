package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ringmaster-ml/ringmaster/pkg/dashboard"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
)

// startCluster builds the binaries and starts a local cluster of 3
// coordinators (each serving the dashboard) and workers workers.
func startCluster(t *testing.T, workers int) *localcluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("ringmaster-dashboard-bin-%d", os.Getpid()))
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := localcluster.Build(ctx, root, dir); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer scancel()
	c, err := localcluster.Start(sctx, localcluster.Config{Dir: t.TempDir(), BinDir: dir, Workers: workers, WorkerTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for _, p := range append(c.Coordinators, c.Workers...) {
				if b, err := os.ReadFile(p.Log); err == nil {
					s := string(b)
					if len(s) > 3000 {
						s = s[len(s)-3000:]
					}
					t.Logf("--- %s ---\n%s", p.Name, s)
				}
			}
		}
	})
	return c
}

// pollUntil calls f until it returns true or limit passes.
func pollUntil(t *testing.T, limit time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := f()
		if ok {
			return
		}
		last = s
		time.Sleep(200 * time.Millisecond) // polling interval, not synchronisation
	}
	t.Fatalf("%s: not within %v (last: %s)", what, limit, last)
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func longSpec(t *testing.T) jobspec.Spec {
	t.Helper()
	s, err := jobspec.Override(jobspec.Default(), []string{
		"model.n_layer=1", "model.n_embd=32", "train.max_iters=100000", "checkpoint.interval=20",
		"train.eval_interval=25", "train.eval_iters=2", "train.held_out=50",
		"parallel.min_workers=1", "parallel.max_workers=3",
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDashboardInChromium loads the page in headless Chromium against a real
// local cluster training a job: the job shows running, its loss curve gains
// points while the test watches, and a SIGKILLed worker shows up in the
// timeline as a new generation with its reason.
func TestDashboardInChromium(t *testing.T) {
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Skip("chromium not found on PATH (apt-get install -y chromium; .ci/run installs it)")
	}
	c := startCluster(t, 3)
	cl := c.Client()
	defer cl.Close()
	job, err := cl.SubmitJob(context.Background(), longSpec(t).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = cl.CancelJob(context.Background(), job.Id, "test over") }()
	// Read through a follower too: every coordinator serves the leader's view.
	api := "http://" + c.HTTPAddrs[len(c.HTTPAddrs)-1] + "/api/v1/jobs/" + job.Id
	var d dashboard.JobDetail
	pollUntil(t, 90*time.Second, "API shows the job running with 3 ranks and progress", func() (bool, string) {
		d = dashboard.JobDetail{}
		if err := getJSON(api, &d); err != nil {
			return false, err.Error()
		}
		return d.State == "running" && len(d.Ranks) == 3 && len(d.Points) >= 2, fmt.Sprintf("%s, %d ranks, %d points", d.State, len(d.Ranks), len(d.Points))
	})

	prof := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(prof),
		chromedp.WindowSize(1280, 1400))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	bctx, tcancel := context.WithTimeout(bctx, 3*time.Minute)
	defer tcancel()

	url := c.DashboardURL() + "?job=" + job.Id
	if err := chromedp.Do(bctx, chromedp.Navigate(url), chromedp.WaitVisible("#job")); err != nil {
		t.Fatalf("page %s: %v", url, err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`document.querySelector("#job-state").textContent === "running"`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("page %s does not show the job running: %v", url, err)
	}
	points := func() int {
		a, err := chromedp.Run(bctx, chromedp.AttributeValue("#chart-loss", "data-points"))
		if err != nil {
			t.Fatalf("read loss chart: %v", err)
		}
		n, _ := strconv.Atoi(a.Value)
		return n
	}
	first := points()
	pollUntil(t, 60*time.Second, "loss curve gains points", func() (bool, string) {
		n := points()
		return n >= first+3, fmt.Sprintf("%d points, started at %d", n, first)
	})
	// The workers evaluate every 25 steps: the val loss is drawn too.
	pollUntil(t, 60*time.Second, "a val-loss line on the loss chart", func() (bool, string) {
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`(() => { const l = document.querySelector('#chart-loss polyline[data-key="val_loss"]'); return l ? l.getAttribute("points").split(" ").length : 0; })()`))
		if err != nil {
			t.Fatalf("read loss chart: %v", err)
		}
		return n >= 2, fmt.Sprintf("%d val-loss points drawn", n)
	})

	victim := d.Ranks[1].Worker
	for _, p := range c.Workers {
		if p.Name == victim {
			p.Signal(syscall.SIGKILL)
		}
	}
	want := fmt.Sprintf("generation %d", d.Generation)
	pollUntil(t, 60*time.Second, "timeline shows a new generation after the kill", func() (bool, string) {
		texts, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#timeline li")].map(e => e.textContent)`))
		if err != nil {
			t.Fatalf("read timeline: %v", err)
		}
		for _, s := range texts {
			if strings.Contains(s, "generation") && !strings.Contains(s, want+":") && strings.Contains(s, "lost") {
				return true, ""
			}
		}
		return false, strings.Join(texts, " | ")
	})
	lost, err := chromedp.Run(bctx, chromedp.Evaluate[bool](fmt.Sprintf(`[...document.querySelectorAll("#timeline li")].some(e => e.textContent.includes("worker %s lost"))`, victim)))
	if err != nil {
		t.Fatal(err)
	}
	if !lost {
		t.Errorf("timeline does not name the killed worker %s", victim)
	}

	// Training goes on in the new generation: every rank reports and the
	// page's rank table shows it.
	pollUntil(t, 60*time.Second, "the new generation's ranks report progress on the page", func() (bool, string) {
		cells, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#ranks tbody tr")].map(r => r.children[1].textContent + "@" + r.children[4].textContent)`))
		if err != nil {
			t.Fatalf("read rank table: %v", err)
		}
		for _, c := range cells {
			if strings.HasPrefix(c, victim+"@") || strings.HasSuffix(c, "@–") {
				return false, strings.Join(cells, " ")
			}
		}
		return len(cells) == 2, strings.Join(cells, " ")
	})
	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("RINGMASTER_ARTIFACTS")
	if dir == "" {
		dir = t.ArtifactDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
