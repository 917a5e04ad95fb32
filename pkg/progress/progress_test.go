package progress

import (
	"strings"
	"testing"
	"time"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

func TestLineSaysStartingUntilAReport(t *testing.T) {
	tr := New(100)
	j := &pb.Job{State: pb.JobState_JOB_STATE_RUNNING}
	now := time.Unix(1000, 0)
	line := tr.Line(j, []*pb.WorkerMessage{nil, {Step: 0}}, now)
	if !strings.Contains(line, "starting") || strings.Contains(line, "loss") || strings.Contains(line, "tokens/s") {
		t.Fatalf("before any report: %q", line)
	}
	if !strings.HasPrefix(line, "running   [░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░] step 0/100") {
		t.Fatalf("head: %q", line)
	}
}

func TestLineETAFromTheRateSinceTheFirstReport(t *testing.T) {
	tr := New(100)
	j := &pb.Job{State: pb.JobState_JOB_STATE_RUNNING, CommittedStep: 10}
	t0 := time.Unix(1000, 0)
	first := tr.Line(j, []*pb.WorkerMessage{{Step: 20, Loss: 1.5, TokensPerSec: 900}}, t0)
	if !strings.Contains(first, "loss 1.5000  900 tokens/s  ETA -  checkpoint 10") {
		t.Fatalf("first report: %q", first)
	}
	// 20 → 40 in 10 s: 2 steps/s, 60 steps left → 30 s. The slower rank's
	// report (step 35) does not count; the furthest one does.
	line := tr.Line(j, []*pb.WorkerMessage{{Step: 35}, {Step: 40, Loss: 1.25, TokensPerSec: 1000}}, t0.Add(10*time.Second))
	want := "running   [" + strings.Repeat("█", 12) + strings.Repeat("░", 18) + "] step 40/100  loss 1.2500  1000 tokens/s  ETA 30s  checkpoint 10"
	if line != want {
		t.Fatalf("got  %q\nwant %q", line, want)
	}
	if tr.Step() != 40 || tr.Checkpoint() != 10 {
		t.Fatalf("Step %d Checkpoint %d", tr.Step(), tr.Checkpoint())
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", 185 * time.Second: "3m05s", 2*time.Hour + 61*time.Second: "2h01m",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}

func TestSparklineScalesBetweenMinAndMax(t *testing.T) {
	for _, c := range []struct {
		vals  []float64
		width int
		want  string
	}{
		{nil, 10, ""},
		{[]float64{3, 2, 1}, 10, "█▄▁"},
		{[]float64{1, 1}, 10, "▁▁"},
		{[]float64{9, 0, 7, 14}, 3, "▁▄█"}, // only the last 3: 0, 7, 14
	} {
		if got := Sparkline(c.vals, c.width); got != c.want {
			t.Errorf("Sparkline(%v, %d) = %q, want %q", c.vals, c.width, got, c.want)
		}
	}
}
