// Command checkpoint measures what checkpointing costs training: a local
// cluster (3 coordinators, 1 worker process) trains a GPT that saves every
// -interval steps; the program reads the worker's /metrics until -saves
// periodic saves are durable, then prints the mean step time, the mean save
// (snapshot → written and fsynced) and its write rate, and the mean stall
// (how long the step loop waited for the save) as a share of a step.
// Saves are asynchronous: the stall is the copy into the staging buffers;
// a synchronous save would stall for the whole save time.
//
//	go run ./bench/checkpoint -shape babygpt -saves 10 -interval 50
//	go run ./bench/checkpoint -shape shakespeare -saves 5 -interval 20
//
// babygpt is nanoGPT's CPU baby GPT (4 layers, 4 heads, 128 wide, block
// 64, batch 12); shakespeare is nanoGPT's shakespeare_char model (6 layers,
// 6 heads, 384 wide, block 256) at batch 12 instead of 64, so a step is
// shorter and the stall a larger share of it than in the real recipe. Both
// read ../shared/data/tinyshakespeare.txt.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "checkpoint:", err)
		os.Exit(1)
	}
}

var shapes = map[string][]string{
	"babygpt":     {"model.n_layer=4", "model.n_head=4", "model.n_embd=128", "model.block_size=64", "train.batch_size=12"},
	"shakespeare": {"model.n_layer=6", "model.n_head=6", "model.n_embd=384", "model.block_size=256", "train.batch_size=12"},
}

func run() error {
	shape := flag.String("shape", "babygpt", "babygpt or shakespeare")
	saves := flag.Int("saves", 10, "periodic saves to measure")
	interval := flag.Int("interval", 50, "checkpoint.interval (steps)")
	data := flag.String("data", "../shared/data/tinyshakespeare.txt", "training text")
	flag.Parse()
	sets, ok := shapes[*shape]
	if !ok {
		return fmt.Errorf("-shape %q: want babygpt or shakespeare", *shape)
	}
	text, err := filepath.Abs(*data)
	if err != nil {
		return err
	}
	if _, err := os.Stat(text); err != nil {
		return fmt.Errorf("-data: %w", err)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ckptbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "bin")
	if err := localcluster.Build(ctx, root, bin); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	c, err := localcluster.Start(sctx, localcluster.Config{Dir: dir, BinDir: bin, Workers: 1})
	cancel()
	if err != nil {
		return err
	}
	defer c.Stop()
	spec, err := jobspec.Override(jobspec.BabyGPT(), append(sets, "data.path="+text,
		fmt.Sprintf("checkpoint.interval=%d", *interval), "train.max_iters=1000000", "train.lr_decay_iters=1000000",
		"train.eval_interval=0", "train.log_interval=100"))
	if err != nil {
		return err
	}
	cl := c.Client()
	defer cl.Close()
	job, err := cl.SubmitJob(ctx, spec.Marshal())
	if err != nil {
		return err
	}
	defer func() { _, _ = cl.CancelJob(context.Background(), job.Id, "benchmark done") }()

	addr := c.WorkerHTTP[0]
	deadline := time.Now().Add(30 * time.Minute)
	var fams map[string]*dto.MetricFamily
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("fewer than %d saves within 30 minutes", *saves)
		}
		time.Sleep(500 * time.Millisecond) // polling the worker's /metrics
		f, err := scrape(addr)
		if err != nil {
			continue
		}
		if n, _ := histogram(f, metrics.CkptSaveSeconds); n >= uint64(*saves) {
			fams = f
			break
		}
	}
	steps, stepSum := histogram(fams, metrics.TrainStepSeconds)
	nSave, saveSum := histogram(fams, metrics.CkptSaveSeconds)
	nStall, stallSum := histogram(fams, metrics.CkptStallSeconds)
	bytes := counter(fams, metrics.CkptSaveBytesTotal)
	skipped := counter(fams, metrics.CkptSavesSkippedTotal)
	step := stepSum / float64(steps)
	save, stall := saveSum/float64(nSave), stallSum/float64(nStall)
	fmt.Printf("%s (%d steps, %d saves every %d steps, %.1f MB each, %v saves skipped)\n",
		*shape, steps, nSave, *interval, bytes/float64(nSave)/1e6, skipped)
	fmt.Printf("  step  %8.2f ms (mean, saves included)\n", step*1e3)
	fmt.Printf("  save  %8.2f ms = %6.1f %% of a step (snapshot → fsynced), %.0f MB/s\n", save*1e3, 100*save/step, bytes/saveSum/1e6)
	fmt.Printf("  stall %8.2f ms = %6.2f %% of a step (the step loop waiting for the save)\n", stall*1e3, 100*stall/step)
	return nil
}

func scrape(addr string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// histogram sums the sample counts and sums of a histogram's series.
func histogram(fams map[string]*dto.MetricFamily, name string) (n uint64, sum float64) {
	for _, m := range fams[name].GetMetric() {
		n += m.GetHistogram().GetSampleCount()
		sum += m.GetHistogram().GetSampleSum()
	}
	return n, sum
}

func counter(fams map[string]*dto.MetricFamily, name string) float64 {
	var v float64
	for _, m := range fams[name].GetMetric() {
		v += m.GetCounter().GetValue()
	}
	return v
}
