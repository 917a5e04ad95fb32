package progress

import (
	"fmt"
	"strings"
	"time"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Tracker follows one job across polls. The zero value is not usable; make
// one with New.
type Tracker struct {
	maxIters int
	// The first report seen, for the ETA's rate: a rate measured from the
	// job's start would count start-up and compilation as training time.
	firstStep int64
	firstAt   time.Time
	seen      bool
	// lastStep and lastCommitted are the latest values seen (Step, Checkpoint).
	lastStep, lastCommitted int64
}

// New returns a tracker for a job of maxIters iterations.
func New(maxIters int) *Tracker { return &Tracker{maxIters: maxIters} }

// Step is the latest step a worker reported (or the job's committed step
// when no report has come), Checkpoint the latest committed checkpoint.
func (t *Tracker) Step() int64       { return t.lastStep }
func (t *Tracker) Checkpoint() int64 { return t.lastCommitted }

// StateName is a job state as the CLI prints it ("running").
func StateName(s pb.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

// Line records one poll (the job and its ranks' latest heartbeats, as
// GetJob returns them, at time now) and renders the progress line. Until a
// worker has reported a training step the line says "starting" instead of a
// loss or a rate it does not know yet.
func (t *Tracker) Line(j *pb.Job, progress []*pb.WorkerMessage, now time.Time) string {
	t.lastCommitted = j.CommittedStep
	t.lastStep = max(t.lastStep, j.CommittedStep)
	var rep *pb.WorkerMessage
	for _, m := range progress {
		if m != nil && m.Step > 0 && (rep == nil || m.Step > rep.Step) {
			rep = m
		}
	}
	if rep != nil {
		t.lastStep = rep.Step
		if !t.seen {
			t.seen, t.firstStep, t.firstAt = true, rep.Step, now
		}
	}
	const width = 30
	filled := int(float64(width) * float64(t.lastStep) / float64(max(t.maxIters, 1)))
	filled = min(max(filled, 0), width)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	head := fmt.Sprintf("%-9s [%s] step %d/%d", StateName(j.State), bar, t.lastStep, t.maxIters)
	if rep == nil {
		return fmt.Sprintf("%s  starting  checkpoint %d", head, j.CommittedStep)
	}
	return fmt.Sprintf("%s  loss %.4f  %.0f tokens/s  ETA %s  checkpoint %d",
		head, rep.Loss, rep.TokensPerSec, t.eta(now), j.CommittedStep)
}

// eta is the time left at the rate measured since the first report, "-"
// until there is a rate to measure.
func (t *Tracker) eta(now time.Time) string {
	done := t.lastStep - t.firstStep
	el := now.Sub(t.firstAt)
	if done <= 0 || el <= 0 {
		return "-"
	}
	left := time.Duration(float64(el) / float64(done) * float64(int64(t.maxIters)-t.lastStep))
	return FormatDuration(max(left, 0))
}

// FormatDuration writes d to the second, minutes and hours only when needed
// ("45s", "3m05s", "2h01m").
func FormatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
}

// Sparkline draws the last width values as block characters scaled between
// their minimum and maximum ("" for no values; a flat series draws low).
func Sparkline(vals []float64, width int) string {
	if len(vals) > width {
		vals = vals[len(vals)-width:]
	}
	if len(vals) == 0 {
		return ""
	}
	lo, hi := vals[0], vals[0]
	for _, v := range vals {
		lo, hi = min(lo, v), max(hi, v)
	}
	const ticks = "▁▂▃▄▅▆▇█"
	runes := []rune(ticks)
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if hi > lo {
			i = int((v - lo) / (hi - lo) * float64(len(runes)-1))
		}
		b.WriteRune(runes[min(max(i, 0), len(runes)-1)])
	}
	return b.String()
}
