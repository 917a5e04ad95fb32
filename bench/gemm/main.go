// Command gemm measures ringmaster's SGEMM (package kernels) in GFLOP/s on
// the shapes of /work/shared/bench/torch/matmul.py, and compares result files
// with that script's JSON. run.sh alternates it with the PyTorch script.
//
//	gemm [-threads 1,2] [-reps 5] [-json out.json]       measure
//	gemm -compare [-against NAME] 'ours*.json' 'torch*.json'   print the comparison table
//
// The code path comes from $RINGMASTER_GEMM (auto, avx512, avx2, generic;
// openblas when built with -tags openblas, as run.sh does when it can, to
// measure OpenBLAS in the same harness).
// Like matmul.py, a point measured while other processes used at least
// $ANCHOR_QUIET_THRESHOLD cores (default 0.25) is measured again, up to 3 tries.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gonum.org/v1/gonum/blas"

	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
)

// row is one measured point, in the field names of matmul.py's JSON.
type row struct {
	Threads int       `json:"threads"`
	Op      string    `json:"op"` // "mm" (C = A·B) or "F.linear" (C = A·Wᵀ, W stored n×k)
	M       int       `json:"M"`
	K       int       `json:"K"`
	N       int       `json:"N"`
	GFLOPS  float64   `json:"gflops_median"`
	Samples []float64 `json:"gflops_samples,omitempty"`
	// Foreign is the CPU (in cores) other processes used while the kept
	// samples ran; Retries counts sample sets discarded for a busy host.
	Foreign float64 `json:"foreign_cores"`
	// CPUPerWall is the median over samples of this process's CPU time per
	// wall second (how many cores the GEMM really used), as matmul.py's
	// cpu_per_wall_median.
	CPUPerWall float64 `json:"cpu_per_wall_median"`
	Retries    int     `json:"contended_retries"`
}

type file struct {
	Path    string `json:"path"`
	Results []row  `json:"results"`
}

var shapes = [][3]int{ // M, K, N
	{128, 128, 128}, {256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024},
	{768, 128, 384}, {768, 128, 512}, {768, 512, 128},
}

func main() {
	threads := flag.String("threads", "1,2", "comma-separated thread counts")
	reps := flag.Int("reps", 5, "timed repetitions per point")
	out := flag.String("json", "", "write results here")
	compare := flag.Bool("compare", false, "compare: args are two globs, ours and torch's JSON")
	against := flag.String("against", "torch", "-compare: the name of the second column")
	flag.Parse()
	if *compare {
		if flag.NArg() != 2 {
			log.Fatal("-compare wants two globs: ours, torch")
		}
		if err := printCompare(flag.Arg(0), flag.Arg(1), *against); err != nil {
			log.Fatal(err)
		}
		return
	}
	if v, err := strconv.ParseFloat(os.Getenv("ANCHOR_QUIET_THRESHOLD"), 64); err == nil {
		quietThreshold = v
	}
	path, err := kernels.ParsePath(os.Getenv("RINGMASTER_GEMM"))
	if err != nil {
		log.Fatal(err)
	}
	var res file
	for _, ts := range strings.Split(*threads, ",") {
		nt, err := strconv.Atoi(ts)
		if err != nil {
			log.Fatal(err)
		}
		im, err := kernels.New(kernels.Options{Threads: nt, Path: path})
		if err != nil {
			log.Fatal(err)
		}
		res.Path = im.Path().String()
		prev := runtime.GOMAXPROCS(nt) // bounds gonum's own parallelism on the generic path
		for _, s := range shapes {
			ops := []string{"mm"}
			if s[0] == 768 {
				ops = append(ops, "F.linear")
			}
			for _, op := range ops {
				r := measure(im, nt, op, s[0], s[1], s[2], *reps)
				res.Results = append(res.Results, r)
				fmt.Printf("%3d %-8s %4dx%-4d @ %4dx%-4d %8.1f GFLOP/s  (other processes %.2f cores, %d retries)\n",
					nt, op, r.M, r.K, r.K, r.N, r.GFLOPS, r.Foreign, r.Retries)
			}
		}
		runtime.GOMAXPROCS(prev)
		im.Close()
	}
	fmt.Printf("path %s\n", res.Path)
	if *out != "" {
		b, _ := json.MarshalIndent(res, "", " ")
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// measure times back-to-back products like matmul.py: warm-up ~0.2 s, an
// inner loop long enough for >= 60 ms, then reps timed repetitions.
func measure(im *kernels.Impl, nt int, op string, m, k, n, reps int) row {
	rng := rand.New(rand.NewPCG(1, 2))
	a, b, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
	for i := range a {
		a[i] = rng.Float32()
	}
	for i := range b {
		b[i] = rng.Float32()
	}
	tB, ldb := blas.NoTrans, n
	if op == "F.linear" {
		tB, ldb = blas.Trans, k
	}
	f := func() { im.Sgemm(blas.NoTrans, tB, m, n, k, 1, a, k, b, ldb, 0, c, n) }
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
		f()
	}
	inner := 1
	for {
		t0 := time.Now()
		for range inner {
			f()
		}
		dt := time.Since(t0)
		if dt >= 60*time.Millisecond {
			break
		}
		inner = max(inner*2, int(float64(inner)*0.066/max(dt.Seconds(), 1e-9)))
	}
	flops := 2 * float64(m) * float64(n) * float64(k)
	r := row{Threads: nt, Op: op, M: m, K: k, N: n}
	// Like matmul.py: a set of samples taken while other processes used
	// >= 0.25 cores is measured again, up to 3 tries.
	for attempt := 0; ; attempt++ {
		r.Samples = r.Samples[:0]
		busy0, own0, t00 := hostBusy(), ownCPU(), time.Now()
		var cpu []float64
		for range reps {
			c0, t0 := ownCPU(), time.Now()
			for range inner {
				f()
			}
			dt := time.Since(t0).Seconds()
			r.Samples = append(r.Samples, flops*float64(inner)/dt/1e9)
			cpu = append(cpu, (ownCPU()-c0)/dt)
		}
		r.CPUPerWall = median(cpu)
		r.Foreign = max(0, (hostBusy()-busy0)-(ownCPU()-own0)) / time.Since(t00).Seconds()
		if r.Foreign < quietThreshold || attempt == 2 {
			break
		}
		r.Retries++
	}
	r.GFLOPS = median(r.Samples)
	return r
}

// quietThreshold is matmul.py's: $ANCHOR_QUIET_THRESHOLD, default 0.25 cores.
var quietThreshold = 0.25

// hostBusy returns the non-idle CPU seconds of the whole host (/proc/stat).
func hostBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy float64
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		if i != 3 && i != 4 && i < 8 { // skip idle, iowait; guest is inside user
			busy += x
		}
	}
	return busy / 100 // USER_HZ
}

// ownCPU returns this process's user+system CPU seconds.
func ownCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type key struct {
	threads int
	op      string
	m, k, n int
}

// point is one program's result for one key in one pass.
type point struct{ gflops, cpuPerWall float64 }

// load reads every file matching glob (sorted by name: one per pass) and
// returns their points and the order of the keys in the first file.
func load(glob string) ([]map[key]point, []key, error) {
	names, err := filepath.Glob(glob)
	if err != nil || len(names) == 0 {
		return nil, nil, fmt.Errorf("no files match %q", glob)
	}
	slices.Sort(names)
	var out []map[key]point
	var order []key
	for i, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, err
		}
		var f file
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		m := map[key]point{}
		for _, r := range f.Results {
			k := key{r.Threads, r.Op, r.M, r.K, r.N}
			m[k] = point{r.GFLOPS, r.CPUPerWall}
			if i == 0 {
				order = append(order, k)
			}
		}
		out = append(out, m)
	}
	return out, order, nil
}

// printCompare prints, per point, the medians over passes of both programs
// and the median of the per-pass ratios (pass i of ours against pass i of
// torch, which ran right after it); then the same per CPU second used
// (GFLOP/s divided by cores busy), which discounts time a program spent
// descheduled by other processes on a shared host but counts spin-waiting.
func printCompare(oursGlob, torchGlob, against string) error {
	ours, order, err := load(oursGlob)
	if err != nil {
		return err
	}
	torch, _, err := load(torchGlob)
	if err != nil {
		return err
	}
	n := min(len(ours), len(torch))
	fmt.Printf("%3s %-8s %-22s %8s %8s %7s | %9s %9s %7s   (%d passes; right: GFLOP per CPU-second)\n",
		"thr", "op", "shape (MxK @ KxN)", "ours", against, "ratio", "ours/cpu", against+"/cpu", "ratio", n)
	for _, k := range order {
		var o, t, r, oc, tc, rc []float64
		for i := 0; i < n; i++ {
			ov, ok1 := ours[i][k]
			tv, ok2 := torch[i][k]
			if !ok1 || !ok2 || tv.gflops <= 0 || ov.cpuPerWall <= 0 || tv.cpuPerWall <= 0 {
				continue
			}
			o, t, r = append(o, ov.gflops), append(t, tv.gflops), append(r, ov.gflops/tv.gflops)
			on, tn := ov.gflops/ov.cpuPerWall, tv.gflops/tv.cpuPerWall
			oc, tc, rc = append(oc, on), append(tc, tn), append(rc, on/tn)
		}
		fmt.Printf("%3d %-8s %-22s %8.1f %8.1f %6.2fx | %9.1f %9.1f %6.2fx\n", k.threads, k.op,
			fmt.Sprintf("%dx%d @ %dx%d", k.m, k.k, k.k, k.n), median(o), median(t), median(r),
			median(oc), median(tc), median(rc))
	}
	return nil
}
