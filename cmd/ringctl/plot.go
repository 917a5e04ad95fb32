package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
)

// plotJob is the part of GET /api/v1/jobs/{id} that plot draws. Name and
// val_loss are read when the API serves them (it does not yet).
type plotJob struct {
	ID     string      `json:"id"`
	Name   string      `json:"name"`
	State  string      `json:"state"`
	Points []plotPoint `json:"points"`
}

type plotPoint struct {
	Step         int64    `json:"step"`
	Generation   uint64   `json:"generation"`
	Loss         float64  `json:"loss"`
	ValLoss      *float64 `json:"val_loss"`
	TokensPerSec float64  `json:"tokens_per_sec"`
}

type plotOptions struct {
	api           string
	output        string // default JOB.png
	width, height int    // pixels (at 96 dpi for .svg and .pdf)
}

// plotResult is plot's --json document.
type plotResult struct {
	Job         string   `json:"job"`
	Name        string   `json:"name"`
	Output      string   `json:"output"`
	Format      string   `json:"format"`
	Width       int      `json:"width"`
	Height      int      `json:"height"`
	Points      int      `json:"points"`
	Generations []uint64 `json:"generations"`
}

var plotFormats = []string{"png", "svg", "pdf"}

// plotDPI maps --width/--height pixels to lengths for the vector formats.
const plotDPI = 96

func plotFormat(path string) (string, error) {
	ext := filepath.Ext(path)
	if f := strings.ToLower(strings.TrimPrefix(ext, ".")); slices.Contains(plotFormats, f) {
		return f, nil
	}
	if ext == "" {
		return "", usagef("-o %q: no extension to choose the image type by; want a name ending in .png, .svg or .pdf", path)
	}
	return "", usagef("-o %q: unknown image type %q; want .png, .svg or .pdf", path, ext)
}

// runPlot draws job id's loss and tokens/s curves into o.output.
func runPlot(ctx context.Context, cf *clusterFlags, id string, o plotOptions) error {
	if o.output == "" {
		o.output = id + ".png"
	}
	format, err := plotFormat(o.output)
	if err != nil {
		return err
	}
	if o.width < 100 || o.height < 100 || o.width > 10000 || o.height > 10000 {
		return usagef("--width %d --height %d: want 100 to 10000 pixels each", o.width, o.height)
	}
	if cf.timeout <= 0 {
		return usagef("--timeout %v: want > 0", cf.timeout)
	}
	base, local, err := resolveAPI(o.api)
	if err != nil {
		return err
	}
	var j plotJob
	err = getJSON(ctx, &http.Client{Timeout: cf.timeout}, jobURL(base, id), &j)
	if errors.Is(err, errNoJob) {
		return fmt.Errorf("job %q: not found at %s; `ringctl jobs` lists the jobs", id, base)
	}
	if err != nil {
		return fmt.Errorf("plot %s: %w", id, err)
	}
	if len(j.Points) == 0 {
		return fmt.Errorf("job %s (%s) has no progress points yet, nothing to plot; `ringctl watch %s` follows it until it trains", id, j.State, id)
	}
	if j.Name == "" {
		j.Name = jobName(ctx, cf, local, id)
	}
	b, err := renderPlot(j, format, o.width, o.height)
	if err != nil {
		return fmt.Errorf("plot %s: %w", id, err)
	}
	if err := os.WriteFile(o.output, b, 0o644); err != nil {
		return fmt.Errorf("write the plot: %w", err)
	}
	var gens []uint64
	for _, g := range byGeneration(j.Points) {
		gens = append(gens, g.gen)
	}
	if cf.json {
		b, err := json.Marshal(plotResult{Job: j.ID, Name: j.Name, Output: o.output, Format: format,
			Width: o.width, Height: o.height, Points: len(j.Points), Generations: gens})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cf.out, "%s\n", b)
		return err
	}
	_, err = fmt.Fprintf(cf.out, "wrote %s: %d points of job %s, %d generation(s)\n", o.output, len(j.Points), id, len(gens))
	return err
}

// jobName asks the coordinators for job id's spec name, for the title; ""
// when they cannot say. It asks only a group that is surely the API's: one
// named by --coordinators or $RINGMASTER_COORDINATORS, or the local cluster
// whose API answered (local, nil if none), lest another cluster's job of
// the same id name the plot.
func jobName(ctx context.Context, cf *clusterFlags, local *localcluster.Discovery, id string) string {
	var addrs []string
	localTLS := ""
	if local != nil {
		addrs, localTLS = local.Coordinators, local.TLSDir
	}
	if cf.addrs != "" || os.Getenv("RINGMASTER_COORDINATORS") != "" {
		a, _, err := cf.coordinators()
		if err != nil {
			return ""
		}
		addrs, localTLS = a, ""
	}
	if len(addrs) == 0 {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, min(cf.timeout, 3*time.Second))
	defer cancel()
	cl, err := cf.newClient(addrs, localTLS)
	if err != nil {
		return ""
	}
	defer cl.Close()
	r, err := cl.GetJob(ctx, id)
	if err != nil || r.Job == nil {
		return ""
	}
	spec, err := jobspec.Parse(r.Job.SpecJson)
	if err != nil {
		return ""
	}
	return spec.Name
}

type genPoints struct {
	gen uint64
	pts []plotPoint
}

// byGeneration splits points by generation, in the order they first
// appear: a later generation resumes from a checkpoint, so its steps may
// overlap the one before.
func byGeneration(pts []plotPoint) []genPoints {
	var out []genPoints
	for _, p := range pts {
		i := slices.IndexFunc(out, func(g genPoints) bool { return g.gen == p.Generation })
		if i < 0 {
			out = append(out, genPoints{gen: p.Generation})
			i = len(out) - 1
		}
		out[i].pts = append(out[i].pts, p)
	}
	return out
}

// renderPlot draws j as two stacked plots, loss (and val loss) over
// tokens/s, one colour per generation with a dotted line where each later
// one starts, and encodes them as format at width×height pixels.
func renderPlot(j plotJob, format string, width, height int) ([]byte, error) {
	title := "job " + j.ID
	if j.Name != "" {
		title += " (" + j.Name + ")"
	}
	top, bot := plot.New(), plot.New()
	top.Title.Text = title
	top.X.Label.Text, top.Y.Label.Text = "step", "loss"
	bot.X.Label.Text, bot.Y.Label.Text = "step", "tokens/s"
	top.Add(plotter.NewGrid())
	bot.Add(plotter.NewGrid())
	// Loss falls to the right, tokens/s is flat near its maximum: the
	// legends go where the curves are not.
	top.Legend.Top, bot.Legend.Top = true, false
	top.Y.Tick.Marker, bot.Y.Tick.Marker = plainTicks{}, plainTicks{}
	gens := byGeneration(j.Points)
	marks := &stepMarks{style: draw.LineStyle{Color: color.Gray{Y: 140}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(2), vg.Points(3)}}}
	for i, g := range gens {
		c := plotutil.Color(i)
		if i > 0 {
			marks.steps = append(marks.steps, float64(g.pts[0].Step))
		}
		var loss, val, tok plotter.XYs
		for _, p := range g.pts {
			x := float64(p.Step)
			loss = append(loss, plotter.XY{X: x, Y: p.Loss})
			tok = append(tok, plotter.XY{X: x, Y: p.TokensPerSec})
			if p.ValLoss != nil {
				val = append(val, plotter.XY{X: x, Y: *p.ValLoss})
			}
		}
		l, err := plotter.NewLine(loss)
		if err != nil {
			return nil, fmt.Errorf("generation %d loss: %w", g.gen, err)
		}
		l.Color, l.Width = c, vg.Points(1.5)
		top.Add(l)
		top.Legend.Add(fmt.Sprintf("loss, generation %d", g.gen), l)
		if len(val) > 0 {
			vl, vp, err := plotter.NewLinePoints(val)
			if err != nil {
				return nil, fmt.Errorf("generation %d val loss: %w", g.gen, err)
			}
			vl.Color, vl.Width, vl.Dashes = c, vg.Points(1.5), []vg.Length{vg.Points(5), vg.Points(3)}
			vp.Color, vp.Shape = c, draw.CircleGlyph{}
			top.Add(vl, vp)
			top.Legend.Add(fmt.Sprintf("val loss, generation %d", g.gen), vl, vp)
		}
		t, err := plotter.NewLine(tok)
		if err != nil {
			return nil, fmt.Errorf("generation %d tokens/s: %w", g.gen, err)
		}
		t.Color, t.Width = c, vg.Points(1.5)
		bot.Add(t)
		bot.Legend.Add(fmt.Sprintf("generation %d", g.gen), t)
	}
	if len(marks.steps) > 0 {
		top.Add(marks)
		bot.Add(marks)
	}
	bot.Y.Min = 0

	w := vg.Length(width) * vg.Inch / plotDPI
	h := vg.Length(height) * vg.Inch / plotDPI
	var cw vg.CanvasWriterTo
	switch format {
	case "png":
		cw = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseImage(image.NewRGBA(image.Rect(0, 0, width, height))), vgimg.UseDPI(plotDPI))}
	case "svg":
		cw = vgsvg.New(w, h)
	case "pdf":
		cw = vgpdf.New(w, h)
	default:
		return nil, fmt.Errorf("image type %q: want one of %v", format, plotFormats)
	}
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	plots := [][]*plot.Plot{{top}, {bot}}
	canvases := plot.Align(plots, tiles, draw.New(cw))
	top.Draw(canvases[0][0])
	bot.Draw(canvases[1][0])
	var buf bytes.Buffer
	if _, err := cw.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode %s: %w", format, err)
	}
	return buf.Bytes(), nil
}

// plainTicks are gonum's default ticks labelled 5000 rather than 5000.00.
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', -1, 64)
		}
	}
	return ts
}

// stepMarks draws a vertical line across the plot at each step (where a
// generation starts).
type stepMarks struct {
	steps []float64
	style draw.LineStyle
}

func (m *stepMarks) Plot(c draw.Canvas, p *plot.Plot) {
	x, _ := p.Transforms(&c)
	for _, s := range m.steps {
		c.StrokeLine2(m.style, x(s), c.Min.Y, x(s), c.Max.Y)
	}
}
