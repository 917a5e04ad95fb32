package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/dashboard"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
	"github.com/ringmaster-ml/ringmaster/pkg/progress"
)

// apiBase resolves the dashboard API's base URL: --api, $RINGMASTER_API,
// else the running `ringctl local` cluster's first coordinator.
func apiBase(flag string) (string, error) {
	base, _, err := resolveAPI(flag)
	return base, err
}

// resolveAPI is apiBase that also returns the local cluster when the API
// is that cluster's (nil otherwise), so a command may ask the same group's
// coordinators for what the API lacks.
func resolveAPI(flag string) (string, *localcluster.Discovery, error) {
	s := flag
	if s == "" {
		s = os.Getenv("RINGMASTER_API")
	}
	var local *localcluster.Discovery
	if s == "" {
		if d, err := localcluster.Find(localcluster.RuntimeDir()); err == nil && len(d.Dashboards) > 0 {
			s, local = d.Dashboards[0], &d
		}
	}
	if s == "" {
		return "", nil, usagef("no dashboard API to talk to: give --api HOST:PORT (a coordinator's --http-addr) or set RINGMASTER_API")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", nil, usagef("--api %q: want HOST:PORT or http://HOST:PORT", s)
	}
	return strings.TrimRight(u.String(), "/"), local, nil
}

// watchRecord is one --json line of `ringctl watch`.
type watchRecord struct {
	Job           string   `json:"job"`
	State         string   `json:"state"`
	Reason        string   `json:"reason,omitempty"`
	Generation    uint64   `json:"generation"`
	Step          int64    `json:"step"`
	MaxSteps      int      `json:"max_steps"`
	CommittedStep int64    `json:"committed_step"`
	Loss          *float64 `json:"loss"`
	ValLoss       *float64 `json:"val_loss"` // the latest reported; null until one is
	TokensPerSec  *float64 `json:"tokens_per_sec"`
	ETASec        *float64 `json:"eta_seconds"`
}

func terminalState(s string) bool { return s == "completed" || s == "failed" || s == "cancelled" }

// runWatch follows one job through GET /api/v1/jobs/{id} until it ends.
func runWatch(ctx context.Context, cf *clusterFlags, id string, api string, interval time.Duration) error {
	base, err := apiBase(api)
	if err != nil {
		return err
	}
	if interval <= 0 {
		return usagef("--interval %v: want a positive duration such as 1s", interval)
	}
	out := cf.out
	tty := !cf.json && isTerminal(out)
	hc := &http.Client{Timeout: cf.timeout}
	var last watchRecord
	var lastGen uint64
	var lastErr error
	failing := time.Time{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				if tty {
					fmt.Fprintln(out)
				}
				return interrupted(ctx, fmt.Sprintf("ringctl watch: interrupted at step %d", last.Step))
			case <-tick.C:
			}
		}
		d, val, err := fetchJob(ctx, hc, base, id)
		if errors.Is(err, errNoJob) {
			return fmt.Errorf("job %q: not found at %s", id, base)
		}
		if err != nil {
			// A coordinator restarting: keep trying for --timeout.
			if failing.IsZero() {
				failing = time.Now()
			}
			lastErr = err
			if time.Since(failing) > cf.timeout {
				return fmt.Errorf("watch %s: %w", id, lastErr)
			}
			continue
		}
		failing = time.Time{}
		rec := record(d, val)
		if !cf.json && d.Generation != lastGen && d.Generation != 0 {
			lastGen = d.Generation
			if tty {
				fmt.Fprint(out, "\r\033[K")
			}
			fmt.Fprintf(out, "generation %d: dp %d × tp %d\n", d.Generation, d.DPSize, d.TPSize)
		}
		changed := rec.Step != last.Step || rec.State != last.State || rec.Generation != last.Generation || first
		switch {
		case cf.json:
			if changed {
				b, _ := json.Marshal(rec)
				fmt.Fprintf(out, "%s\n", b)
			}
		case tty:
			fmt.Fprint(out, "\r\033[K"+watchLine(d, val))
		case changed:
			fmt.Fprintln(out, watchLine(d, val))
		}
		last = rec
		if terminalState(d.State) {
			if tty {
				fmt.Fprintln(out)
			}
			if !cf.json {
				fmt.Fprintf(out, "job %s %s%s\n", d.ID, d.State, prefixed(": ", d.Reason))
			}
			if d.State != "completed" {
				return fmt.Errorf("job %s %s%s", d.ID, d.State, prefixed(": ", d.Reason))
			}
			return nil
		}
	}
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

var errNoJob = errors.New("no such job")

// fetchJob reads GET /api/v1/jobs/{id}, also into extra (the latest val
// loss, which dashboard.Point may not carry yet).
func fetchJob(ctx context.Context, hc *http.Client, base, id string) (dashboard.JobDetail, *float64, error) {
	var d dashboard.JobDetail
	var extra struct {
		Points []struct {
			ValLoss *float64 `json:"val_loss"`
		} `json:"points"`
	}
	err := getJSON(ctx, hc, jobURL(base, id), &d, &extra)
	var val *float64
	for _, p := range extra.Points {
		if p.ValLoss != nil {
			val = p.ValLoss
		}
	}
	return d, val, err
}

func jobURL(base, id string) string { return base + "/api/v1/jobs/" + url.PathEscape(id) }

// getJSON decodes the JSON document at u into each of vs; a 404 is errNoJob.
func getJSON(ctx context.Context, hc *http.Client, u string, vs ...any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return errNoJob
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s %s", req.URL, resp.Status, strings.TrimSpace(string(b)))
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: read: %w", req.URL, err)
	}
	for _, v := range vs {
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("%s: decode: %w", req.URL, err)
		}
	}
	return nil
}

// record is watch's --json line for d; val is the latest val loss, if any.
func record(d dashboard.JobDetail, val *float64) watchRecord {
	r := watchRecord{Job: d.ID, State: d.State, Reason: d.Reason, Generation: d.Generation, Step: d.Step,
		MaxSteps: d.MaxSteps, CommittedStep: d.CommittedStep, ValLoss: val, ETASec: d.ETASec}
	if n := len(d.Points); n > 0 {
		p := d.Points[n-1]
		r.Loss, r.TokensPerSec = &p.Loss, &p.TokensPerSec
	}
	return r
}

// watchLine is one progress line: state, bar, step/max, loss, val loss,
// tokens/s, ETA, checkpoint and a sparkline of the recent losses; val is
// the latest val loss, if any.
func watchLine(d dashboard.JobDetail, val *float64) string {
	const width = 24
	filled := 0
	if d.MaxSteps > 0 {
		filled = min(max(int(float64(width)*float64(d.Step)/float64(d.MaxSteps)), 0), width)
	}
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	s := fmt.Sprintf("%-9s [%s] step %d/%d", d.State, bar, d.Step, d.MaxSteps)
	n := len(d.Points)
	if n == 0 {
		return s + fmt.Sprintf("  loss -  val loss -  checkpoint %d", d.CommittedStep)
	}
	p := d.Points[n-1]
	eta := "-"
	if d.ETASec != nil {
		eta = progress.FormatDuration(time.Duration(*d.ETASec * float64(time.Second)))
	}
	losses := make([]float64, 0, n)
	for _, q := range d.Points {
		losses = append(losses, q.Loss)
	}
	vl := "-"
	if val != nil {
		vl = fmt.Sprintf("%.4f", *val)
	}
	return s + fmt.Sprintf("  loss %.4f  val loss %s  %.0f tokens/s  ETA %s  checkpoint %d  %s",
		p.Loss, vl, p.TokensPerSec, eta, d.CommittedStep, progress.Sparkline(losses, 32))
}
