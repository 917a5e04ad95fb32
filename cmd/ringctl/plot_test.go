package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotutil"
)

// plotFixture is a job's /api/v1/jobs/{id} answer: generation 1 trains to
// step 300, generation 2 resumes from the checkpoint at 200; val loss
// every 100 steps (a field dashboard.Point may carry).
func plotFixture() map[string]any {
	var pts []map[string]any
	add := func(gen uint64, from, to int64, tps float64) {
		for s := from; s <= to; s += 10 {
			p := map[string]any{"t": 1000 * s, "step": s, "generation": gen,
				"loss": 3.0 / (1 + float64(s)/50), "tokens_per_sec": tps + float64(s%30)}
			if s%100 == 0 {
				p["val_loss"] = 3.2 / (1 + float64(s)/50)
			}
			pts = append(pts, p)
		}
	}
	add(1, 10, 300, 5000)
	add(2, 200, 500, 3000)
	return map[string]any{"id": "job-7", "name": "sort-gpt", "state": "running", "generation": 2,
		"step": 500, "max_steps": 1000, "points": pts}
}

// plotServer serves jobs by id as the dashboard API does (404 otherwise).
func plotServer(t *testing.T, jobs map[string]any) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j, ok := jobs[strings.TrimPrefix(r.URL.Path, "/api/v1/jobs/")]
		if !ok {
			http.Error(w, `{"error":"no such job"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(j)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// runCLI runs one ringctl command line in-process with no cluster around.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("RINGMASTER_COORDINATORS", "")
	t.Setenv("RINGMASTER_API", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// countColor counts the pixels of r in img that are c.
func countColor(img image.Image, r image.Rectangle, c color.Color) int {
	want := color.RGBAModel.Convert(c)
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) == want {
				n++
			}
		}
	}
	return n
}

func TestPlotPNG(t *testing.T) {
	api := plotServer(t, map[string]any{"job-7": plotFixture()})
	out := filepath.Join(t.TempDir(), "loss.png")
	code, stdout, stderr := runCLI(t, "plot", "job-7", "-o", out, "--api", api, "--width", "640", "--height", "480")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := "wrote " + out + ": 61 points of job job-7, 2 generation(s)\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 480 {
		t.Fatalf("image is %v, want 640×480", b)
	}
	// Both halves (loss above, tokens/s below) hold drawing, and each
	// generation's curve colour appears in both.
	halves := map[string]image.Rectangle{"top": image.Rect(0, 0, 640, 240), "bottom": image.Rect(0, 240, 640, 480)}
	for name, r := range halves {
		area := r.Dx() * r.Dy()
		if white := countColor(img, r, color.White); white > area*98/100 || white < area/2 {
			t.Errorf("%s half: %d of %d pixels are background, want some drawing on a white page", name, white, area)
		}
		for i := range 2 {
			if n := countColor(img, r, plotutil.Color(i)); n < 100 {
				t.Errorf("%s half: %d pixels of generation %d's colour %v, want a curve (≥ 100)", name, n, i+1, plotutil.Color(i))
			}
		}
		if n := countColor(img, r, plotutil.Color(2)); n != 0 {
			t.Errorf("%s half: %d pixels of a third generation's colour; the job has two", name, n)
		}
	}
}

func TestPlotVectorFormatsAndJSON(t *testing.T) {
	api := plotServer(t, map[string]any{"job-7": plotFixture()})
	for ext, magic := range map[string]string{".svg": "<?xml", ".pdf": "%PDF-", ".PNG": "\x89PNG"} {
		t.Run(ext, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "loss"+ext)
			code, stdout, stderr := runCLI(t, "plot", "job-7", "-o", out, "--api", api, "--json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte(magic)) || len(b) < 1000 {
				t.Errorf("%s: %d bytes starting %q, want a %q file", out, len(b), b[:min(len(b), 8)], magic)
			}
			var got plotResult
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("--json output %q: %v", stdout, err)
			}
			want := plotResult{Job: "job-7", Name: "sort-gpt", Output: out, Format: strings.ToLower(ext[1:]),
				Width: 1200, Height: 900, Points: 61, Generations: []uint64{1, 2}}
			if got.Job != want.Job || got.Name != want.Name || got.Output != want.Output || got.Format != want.Format ||
				got.Width != want.Width || got.Height != want.Height || got.Points != want.Points || len(got.Generations) != 2 {
				t.Errorf("--json %+v, want %+v", got, want)
			}
		})
	}
}

func TestPlotErrors(t *testing.T) {
	empty := plotFixture()
	empty["id"], empty["state"], empty["points"] = "job-2", "waiting", []any{}
	api := plotServer(t, map[string]any{"job-7": plotFixture(), "job-2": empty})
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown job", []string{"job-9", "-o", filepath.Join(dir, "a.png"), "--api", api}, exitFailure,
			`job "job-9": not found at ` + api + "; `ringctl jobs` lists the jobs"},
		{"no points", []string{"job-2", "-o", filepath.Join(dir, "b.png"), "--api", api}, exitFailure,
			"job job-2 (waiting) has no progress points yet, nothing to plot"},
		{"unwritable", []string{"job-7", "-o", filepath.Join(dir, "missing", "c.png"), "--api", api}, exitFailure,
			"write the plot: open " + filepath.Join(dir, "missing", "c.png") + ": no such file or directory"},
		{"unknown extension", []string{"job-7", "-o", filepath.Join(dir, "d.gif"), "--api", api}, exitUsage,
			`unknown image type ".gif"; want .png, .svg or .pdf`},
		{"no extension", []string{"job-7", "-o", filepath.Join(dir, "loss"), "--api", api}, exitUsage,
			"no extension to choose the image type by"},
		{"tiny", []string{"job-7", "-o", filepath.Join(dir, "e.png"), "--api", api, "--width", "10"}, exitUsage,
			"--width 10 --height 900: want 100 to 10000 pixels each"},
		{"no api", []string{"job-7", "-o", filepath.Join(dir, "f.png")}, exitUsage, "no dashboard API to talk to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"plot"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("failed plots left files in %s: %v %v", dir, ents, err)
	}
}

func TestByGeneration(t *testing.T) {
	pts := []plotPoint{{Step: 1, Generation: 1}, {Step: 2, Generation: 1}, {Step: 1, Generation: 3}, {Step: 3, Generation: 3}}
	got := byGeneration(pts)
	if len(got) != 2 || got[0].gen != 1 || len(got[0].pts) != 2 || got[1].gen != 3 || len(got[1].pts) != 2 {
		t.Errorf("byGeneration = %+v, want generations 1 and 3 with two points each", got)
	}
}

// watch reads the val loss that plot draws: its --json record and line
// carry the latest one.
func TestWatchValLoss(t *testing.T) {
	j := plotFixture()
	j["state"] = "completed"
	api := plotServer(t, map[string]any{"job-7": j})
	code, stdout, stderr := runCLI(t, "watch", "job-7", "--api", api, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rec watchRecord
	if err := json.Unmarshal([]byte(stdout), &rec); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	if want := 3.2 / 11; rec.ValLoss == nil || math.Abs(*rec.ValLoss-want) > 1e-12 {
		t.Errorf("val_loss %v, want %v (step 500's)", fmtPtr(rec.ValLoss), want)
	}
	code, stdout, _ = runCLI(t, "watch", "job-7", "--api", api)
	if code != 0 || !strings.Contains(stdout, "  val loss 0.2909  ") {
		t.Errorf("exit %d, stdout %q; want the line's val loss 0.2909", code, stdout)
	}
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}
