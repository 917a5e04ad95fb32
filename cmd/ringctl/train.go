package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
)

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// specFlags are the flags every command that takes a job spec shares.
type specFlags struct {
	specFile string
	preset   string
	sets     multiFlag
}

func (f *specFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.specFile, "spec", "", "job spec file (YAML or JSON); overrides -preset")
	fs.StringVar(&f.preset, "preset", "sort", "built-in job: "+strings.Join(jobspec.PresetNames(), ", "))
	fs.Var(&f.sets, "set", "override one spec field, e.g. -set train.max_iters=100 (repeatable)")
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

// useFastGEMM installs the fastest SGEMM this CPU supports as gonum's BLAS
// (RINGMASTER_GEMM=auto|avx512|avx2|generic forces a path; openblas in a
// binary built with -tags openblas). The returned
// function stops its worker pool.
func useFastGEMM(threads int) (func(), error) {
	path, err := kernels.ParsePath(os.Getenv("RINGMASTER_GEMM"))
	if err != nil {
		return nil, fmt.Errorf("RINGMASTER_GEMM: %w", err)
	}
	impl, err := kernels.New(kernels.Options{Threads: threads, Path: path})
	if err != nil {
		return nil, fmt.Errorf("RINGMASTER_GEMM=%s: %w", path, err)
	}
	blas32.Use(impl)
	slog.Debug("gemm", "path", impl.Path(), "threads", impl.Threads())
	return func() { _ = impl.Close() }, nil
}

func runTrain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	var sf specFlags
	sf.register(fs)
	out := fs.String("out", "", "directory for the trained model (default out/<job name>)")
	printSpec := fs.Bool("print-spec", false, "print the resolved job spec as JSON and exit")
	threads := fs.Int("threads", 0, "cores to train on (0: all)")
	lanes := fs.Int("lanes", 0, "split each micro-batch across this many replicas running at once, one core each (0: one per thread; 1: none, every matrix product uses all threads instead)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ringctl train [-preset NAME | -spec FILE] [-set key=value ...] [-out DIR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; overrides go in -set key=value", fs.Arg(0))
	}
	spec, err := sf.load()
	if err != nil {
		return err
	}
	if *printSpec {
		fmt.Println(string(spec.Marshal()))
		return nil
	}
	nThreads := *threads
	if nThreads <= 0 {
		nThreads = runtime.GOMAXPROCS(0)
	}
	nLanes := *lanes
	switch {
	case nLanes < 0:
		return fmt.Errorf("-lanes %d: want ≥ 0 (0: one per thread)", nLanes)
	case nLanes == 0:
		nLanes = min(nThreads, spec.Train.BatchSize)
	}
	stopGEMM, err := useFastGEMM(max(1, nThreads/max(1, nLanes)))
	if err != nil {
		return err
	}
	defer stopGEMM()
	dir := *out
	if dir == "" {
		dir = filepath.Join("out", spec.Name)
	}
	res, err := train.Run(ctx, spec, train.Options{OutDir: dir, Out: os.Stdout, Lanes: nLanes})
	if errors.Is(err, context.Canceled) && res != nil && res.Saved != "" {
		fmt.Printf("interrupted after %d iterations; saved %s\n", res.Iters, res.Saved)
		return nil
	}
	return err
}
