package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringmaster-ml/ringmaster/internal/sysmem"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
)

// specFlags are the flags every command that takes a job spec shares.
type specFlags struct {
	specFile string
	preset   string
	sets     []string
}

func (f *specFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.specFile, "spec", "", "job spec file (YAML or JSON); overrides --preset")
	c.Flags().StringVar(&f.preset, "preset", "sort", "built-in job: "+strings.Join(jobspec.PresetNames(), ", "))
	c.Flags().StringArrayVar(&f.sets, "set", nil, "override one spec field, e.g. --set train.max_iters=100 (repeatable)")
	completePresets(c, "preset")
	_ = c.MarkFlagFilename("spec", "yaml", "yml", "json")
}

// completePresets completes flag with the built-in preset names.
func completePresets(c *cobra.Command, flag string) {
	_ = c.RegisterFlagCompletionFunc(flag, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return jobspec.PresetNames(), cobra.ShellCompDirectiveNoFileComp
	})
}

// load returns the spec the flags name, with overrides applied and validated.
func (f *specFlags) load() (jobspec.Spec, error) {
	var spec jobspec.Spec
	var err error
	if f.specFile != "" {
		spec, err = jobspec.ParseFile(f.specFile)
	} else {
		spec, err = jobspec.Preset(f.preset)
	}
	if err != nil {
		return spec, err
	}
	return jobspec.Override(spec, f.sets)
}

// fastCompute is the model execution for this command: the fastest SGEMM
// this CPU supports on gemmThreads goroutines (RINGMASTER_GEMM=auto|avx512|
// avx2|generic forces a path; openblas in a binary built with -tags
// openblas) and layerThreads for a GPT's other loops (0: GOMAXPROCS). The
// returned function stops the GEMM's pool.
func fastCompute(gemmThreads, layerThreads int) (model.Compute, func(), error) {
	path, err := kernels.ParsePath(os.Getenv("RINGMASTER_GEMM"))
	if err != nil {
		return model.Compute{}, nil, fmt.Errorf("RINGMASTER_GEMM: %w", err)
	}
	impl, err := kernels.New(kernels.Options{Threads: gemmThreads, Path: path})
	if err != nil {
		return model.Compute{}, nil, fmt.Errorf("RINGMASTER_GEMM=%s: %w", path, err)
	}
	slog.Debug("gemm", "path", impl.Path(), "threads", impl.Threads())
	return model.Compute{GEMM: impl, Threads: layerThreads}, func() { _ = impl.Close() }, nil
}

// trainFlags are train's flags.
type trainFlags struct {
	spec      specFlags
	out       string
	printSpec bool
	threads   int
	lanes     int
}

func newTrainCmd() *cobra.Command {
	var f trainFlags
	c := &cobra.Command{
		Use:   "train [--preset NAME | --spec FILE] [--set key=value ...] [--out DIR]",
		Short: "train a model in this process (default: the built-in sort job)",
		Args:  noArgs,
		RunE:  func(c *cobra.Command, _ []string) error { return runTrain(c.Context(), c.OutOrStdout(), f) },
	}
	f.spec.register(c)
	c.Flags().StringVar(&f.out, "out", "", "directory for the trained model (default out/<job name>)")
	c.Flags().BoolVar(&f.printSpec, "print-spec", false, "print the resolved job spec (JSON, derived values marked with # comments: YAML) and exit")
	c.Flags().IntVar(&f.threads, "threads", 0, "cores to train on (0: all)")
	c.Flags().IntVar(&f.lanes, "lanes", 0, "split each micro-batch across this many replicas running at once, one core each (0: one per thread; 1: none, every matrix product uses all threads instead)")
	_ = c.MarkFlagDirname("out")
	return c
}

func runTrain(ctx context.Context, stdout io.Writer, f trainFlags) error {
	if f.threads < 0 {
		return usagef("--threads %d: want ≥ 0 (0: all cores)", f.threads)
	}
	if f.lanes < 0 {
		return usagef("--lanes %d: want ≥ 0 (0: one per thread)", f.lanes)
	}
	spec, err := f.spec.load()
	if err != nil {
		return err
	}
	if f.printSpec {
		fmt.Fprintln(stdout, string(spec.MarshalAnnotated()))
		return nil
	}
	nThreads := f.threads
	if nThreads == 0 {
		nThreads = runtime.GOMAXPROCS(0)
	}
	nLanes := f.lanes
	if nLanes == 0 {
		nLanes = min(nThreads, spec.Train.BatchSize)
	}
	est, known, err := estimateSpec(stdout, spec, jobspec.Layout{Lanes: nLanes, OneProcess: true}, true)
	if err != nil {
		return err
	}
	if avail, ok := sysmem.Available(); known && ok {
		if err := est.Fits(avail); err != nil {
			return err
		}
	}
	compute, stopGEMM, err := fastCompute(max(1, nThreads/max(1, nLanes)), nThreads)
	if err != nil {
		return err
	}
	defer stopGEMM()
	dir := f.out
	if dir == "" {
		dir = filepath.Join("out", spec.Name)
	}
	res, err := train.Run(ctx, spec, train.Options{OutDir: dir, Out: stdout, Lanes: nLanes, Compute: compute})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		step, ckpt := 0, "no checkpoint"
		if res != nil {
			step = res.Iters
			if res.Saved != "" {
				ckpt = fmt.Sprintf("checkpoint at %d: %s", res.Iters, res.Saved)
			}
		}
		return interrupted(ctx, fmt.Sprintf("interrupted at step %d (%s)", step, ckpt))
	}
	return err
}
