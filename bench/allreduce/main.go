// Command allreduce-bench measures ringmaster's all-reduce against the
// PyTorch/Gloo reference (../shared/bench/torch/allreduce_gloo.py) on
// 127.0.0.1, alternating the two in one invocation, and prints a table with
// time, algbw, busbw (nccl-tests: busbw = algbw·2(n−1)/n) and ratios.
//
// It re-executes itself with -role=rank to start one process per rank.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
)

var (
	role     = flag.String("role", "launcher", "launcher or rank (internal)")
	worlds   = flag.String("world-sizes", "2,4", "world sizes")
	sizesF   = flag.String("sizes", "4096,65536,1048576,4194304,16777216,67108864", "bytes, comma separated")
	rounds   = flag.Int("rounds", 3, "A/B rounds (ringmaster, then gloo) per world size")
	mode     = flag.String("mode", "bulk", "ringmaster transports to run each round, comma separated: bulk (the default: raw streams negotiated over gRPC, a Unix socket between processes on one host), tcp (raw TCP streams even on one host) or grpc (gRPC streams); a +tls suffix (tcp+tls, ...) runs it with mutual TLS, as a cluster with --tls-dir does")
	tlsDirF  = flag.String("tls-dir", "", "certificates of the ranks (internal: the launcher makes them for +tls modes)")
	shared   = flag.String("shared", "", "path of the shared folder (default $RINGMASTER_SHARED or <repo>/../shared)")
	python   = flag.String("python", "/usr/bin/python3", "python with torch")
	noGloo   = flag.Bool("no-gloo", false, "skip the Gloo reference")
	chunk    = flag.Int("chunk-bytes", 0, "ring chunk bytes (0: default)")
	small    = flag.Int("small-bytes", 0, "direct-exchange threshold bytes (0: default, -1: off)")
	rankF    = flag.Int("rank", 0, "rank (internal)")
	peersF   = flag.String("peers", "", "gRPC addresses by rank (internal)")
	jsonOut  = flag.String("json", "", "write all results as JSON here")
	cpuProf  = flag.String("cpuprofile", "", "rank 0 writes a CPU profile here")
	quiet    = flag.Duration("quiet-wait", 30*time.Second, "before each run (both implementations) wait up to this long for other processes to use < 0.25 cores; exported to the Gloo script as ANCHOR_QUIET_WAIT")
	itersF   = flag.Int("iters", 0, "timed calls per size (0: enough for 0.5 s, 10…200)")
	minIters = 10
	maxIters = 200
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *role == "rank" {
		if err := runRank(); err != nil {
			log.Fatalf("rank %d: %v", *rankF, err)
		}
		return
	}
	if err := launch(); err != nil {
		log.Fatal(err)
	}
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			log.Fatalf("bad number %q", f)
		}
		out = append(out, v)
	}
	return out
}

// row is one measurement: one world size, one size, one implementation, one round.
type row struct {
	Impl      string  `json:"impl"`
	World     int     `json:"world_size"`
	Bytes     int     `json:"bytes"`
	Iters     int     `json:"iters"`
	MedianUS  float64 `json:"time_us_median"`
	P10US     float64 `json:"time_us_p10"`
	P90US     float64 `json:"time_us_p90"`
	AlgBW     float64 `json:"algbw_GBps"`
	BusBW     float64 `json:"busbw_GBps"`
	B2BBusBW  float64 `json:"back_to_back_busbw_GBps"`
	Correct   bool    `json:"correct"`
	Round     int     `json:"round"`
	Transport string  `json:"transport,omitempty"`
}

// ---------------------------------------------------------------- rank side

func runRank() error {
	peers := strings.Split(*peersF, ",")
	n, rank := len(peers), *rankF
	if *cpuProf != "" && rank == 0 {
		f, err := os.Create(*cpuProf)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	base, secure := strings.CutSuffix(*mode, "+tls")
	opts := allreduce.ServerOptions{BulkAddr: "127.0.0.1:0"}
	var ids []string
	if secure {
		for r := range n {
			ids = append(ids, rankName(r))
		}
		src, err := tlsauth.Load(tlsauth.InDir(*tlsDirF, rankName(rank)), nil)
		if err != nil {
			return err
		}
		opts.TLS = src
	}
	srv, err := allreduce.NewServer(opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", peers[rank])
	if err != nil {
		return err
	}
	gs := grpc.NewServer(srv.GRPCServerOptions(nil)...)
	srv.Register(gs)
	var wg sync.WaitGroup
	wg.Go(func() { gs.Serve(ln) })
	defer func() { gs.Stop(); wg.Wait() }()

	m := allreduce.ModeBulk
	switch base {
	case "bulk":
	case "grpc":
		m = allreduce.ModeGRPC
	case "tcp":
		m = allreduce.ModeTCP
	default:
		return fmt.Errorf("-mode %q: want bulk, tcp or grpc, with or without +tls", *mode)
	}
	tr, err := srv.Join(allreduce.GroupConfig{Job: "bench", Generation: 1, Rank: rank, Peers: peers, PeerIDs: ids, PeerTimeout: 60 * time.Second, Mode: m})
	if err != nil {
		return err
	}
	c := allreduce.New(tr, allreduce.Options{ChunkBytes: *chunk, SmallBytes: *small})
	defer c.Close()
	ctx := context.Background()

	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, nbytes := range parseInts(*sizesF) {
		l := nbytes / 4
		x := make([]float32, l)
		fill := func(v float32) {
			for i := range x {
				x[i] = v
			}
		}
		fill(float32(rank + 1))
		t0 := time.Now()
		if err := c.AllReduce(ctx, x, allreduce.Sum); err != nil {
			return err
		}
		want := float32(n * (n + 1) / 2)
		ok := l == 0 || (x[0] == want && x[l-1] == want)
		for range 2 {
			fill(1)
			if err := c.AllReduce(ctx, x, allreduce.Sum); err != nil {
				return err
			}
		}
		warm := time.Since(t0).Seconds() / 3
		iters := min(maxIters, max(minIters, int(0.5/max(warm, 1e-6))))
		if *itersF > 0 {
			iters = *itersF
		}
		it := []float32{float32(iters)}
		if err := c.Broadcast(ctx, it, 0); err != nil {
			return err
		}
		iters = int(it[0])
		// times[r*iters+k] is rank r's k-th call; summed across ranks = gathered.
		times := make([]float32, n*iters)
		for k := range iters {
			fill(1)
			if err := c.Barrier(ctx); err != nil {
				return err
			}
			t := time.Now()
			if err := c.AllReduce(ctx, x, allreduce.Sum); err != nil {
				return err
			}
			times[rank*iters+k] = float32(time.Since(t).Seconds())
		}
		fill(0)
		if err := c.Barrier(ctx); err != nil {
			return err
		}
		t := time.Now()
		for range iters {
			if err := c.AllReduce(ctx, x, allreduce.Sum); err != nil {
				return err
			}
		}
		b2b := time.Since(t).Seconds() / float64(iters)
		if err := c.AllReduce(ctx, times, allreduce.Sum); err != nil {
			return err
		}
		okv := []float32{0}
		if !ok {
			okv[0] = 1
		}
		if err := c.AllReduce(ctx, okv, allreduce.Sum); err != nil {
			return err
		}
		if rank != 0 {
			continue
		}
		tmax := make([]float64, iters)
		for k := range iters {
			for r := range n {
				tmax[k] = max(tmax[k], float64(times[r*iters+k]))
			}
		}
		med := median(tmax)
		alg := float64(nbytes) / med / 1e9
		bus := func(a float64) float64 { return a * 2 * float64(n-1) / float64(n) }
		json.NewEncoder(out).Encode(row{
			Impl: "ringmaster", World: n, Bytes: nbytes, Iters: iters,
			MedianUS: med * 1e6, P10US: pct(tmax, 0.1) * 1e6, P90US: pct(tmax, 0.9) * 1e6,
			AlgBW: alg, BusBW: bus(alg), B2BBusBW: bus(float64(nbytes) / b2b / 1e9), Correct: okv[0] == 0,
			Transport: *mode,
		})
	}
	return nil
}

func median(x []float64) float64 { return pct(x, 0.5) }

// pct is the linear-interpolated percentile (numpy's default, like _common.py's).
func pct(x []float64, p float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	pos := p * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (s[i+1]-s[i])*(pos-float64(i))
}

// ---------------------------------------------------------------- launcher

func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// rankName is rank r's worker id (and certificate name) in +tls modes.
func rankName(r int) string { return "rank" + strconv.Itoa(r) }

// issueRankCerts makes a cluster CA and worker certificates for ranks
// 0…world-1 in dir.
func issueRankCerts(dir string, world int) error {
	ca, err := tlsauth.LoadCA(dir)
	if err != nil {
		if ca, err = tlsauth.InitDir(dir, 0, false); err != nil {
			return err
		}
	}
	for r := range world {
		if _, err := ca.IssueToDir(dir, "", tlsauth.IssueOptions{Identity: tlsauth.Identity{Role: tlsauth.RoleWorker, Name: rankName(r)}}); err != nil {
			return err
		}
	}
	return nil
}

func runOurs(ctx context.Context, world, round int, mode string) ([]row, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tlsDir := ""
	if strings.HasSuffix(mode, "+tls") {
		if tlsDir, err = os.MkdirTemp("", "allreduce-bench-tls-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(tlsDir)
		if err := issueRankCerts(tlsDir, world); err != nil {
			return nil, err
		}
	}
	peers, err := freePorts(world)
	if err != nil {
		return nil, err
	}
	var cmds []*exec.Cmd
	var out strings.Builder
	for r := range world {
		args := []string{"-role=rank", "-rank=" + strconv.Itoa(r), "-peers=" + strings.Join(peers, ","),
			"-sizes=" + *sizesF, "-mode=" + mode, "-chunk-bytes=" + strconv.Itoa(*chunk), "-small-bytes=" + strconv.Itoa(*small), "-iters=" + strconv.Itoa(*itersF), "-cpuprofile=" + *cpuProf, "-tls-dir=" + tlsDir}
		cmd := exec.CommandContext(ctx, self, args...)
		cmd.Stderr = os.Stderr
		if r == 0 {
			cmd.Stdout = &out
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		cmds = append(cmds, cmd)
	}
	var firstErr error
	for _, c := range cmds {
		if err := c.Wait(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, fmt.Errorf("ringmaster world %d: %w", world, firstErr)
	}
	var rows []row
	dec := json.NewDecoder(strings.NewReader(out.String()))
	for dec.More() {
		var r row
		if err := dec.Decode(&r); err != nil {
			return nil, err
		}
		r.Round = round
		rows = append(rows, r)
	}
	return rows, nil
}

func runGloo(ctx context.Context, dir string, world, round int) ([]row, error) {
	script := filepath.Join(dir, "bench", "torch", "allreduce_gloo.py")
	res, err := os.MkdirTemp("", "ringmaster-gloo-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(res)
	cmd := exec.CommandContext(ctx, *python, script, "--world-sizes", strconv.Itoa(world), "--sizes", *sizesF)
	cmd.Env = append(os.Environ(), "BENCH_RESULTS_DIR="+res)
	cmd.Stderr = os.Stderr
	if outb, err := cmd.Output(); err != nil {
		return nil, fmt.Errorf("gloo world %d: %w\n%s", world, err, outb)
	}
	matches, _ := filepath.Glob(filepath.Join(res, "*.json"))
	if len(matches) == 0 {
		return nil, fmt.Errorf("gloo world %d wrote no JSON", world)
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		return nil, err
	}
	var doc struct {
		Implementation string `json:"implementation"`
		Results        []row  `json:"results"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	for i := range doc.Results {
		doc.Results[i].Impl = "gloo"
		doc.Results[i].Round = round
		doc.Results[i].Transport = doc.Implementation
	}
	return doc.Results, nil
}

func sharedDir() string {
	if *shared != "" {
		return *shared
	}
	if s := os.Getenv("RINGMASTER_SHARED"); s != "" {
		return s
	}
	wd, _ := os.Getwd()
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared")
		}
	}
	return "../shared"
}

func launch() error {
	ctx := context.Background()
	dir := sharedDir()
	var all []row
	if os.Getenv("ANCHOR_QUIET_WAIT") == "" {
		os.Setenv("ANCHOR_QUIET_WAIT", strconv.Itoa(int(quiet.Seconds())))
	}
	for _, w := range parseInts(*worlds) {
		for round := range *rounds {
			for _, m := range strings.Split(*mode, ",") {
				waitQuiet(*quiet)
				log.Printf("world %d round %d: ringmaster (%s)", w, round+1, m)
				r, err := runOurs(ctx, w, round, m)
				if err != nil {
					return err
				}
				all = append(all, r...)
			}
			waitQuiet(*quiet)
			if *noGloo {
				continue
			}
			log.Printf("world %d round %d: gloo", w, round+1)
			g, err := runGloo(ctx, dir, w, round)
			if err != nil {
				return err
			}
			all = append(all, g...)
		}
	}
	report(all)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(all, "", " ")
		return os.WriteFile(*jsonOut, b, 0o644)
	}
	return nil
}

// busyJiffies returns the busy and total jiffies of all CPUs from /proc/stat.
func busyJiffies() (busy, total float64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal
			total += x
			if i != 3 && i != 4 {
				busy += x
			}
		}
	}
	return busy, total, true
}

// waitQuiet waits (up to max) until the rest of the machine uses < 0.25
// cores over 2 s, like _common.wait_for_quiet does before each Gloo run, so
// that both implementations start under the same conditions.
func waitQuiet(max time.Duration) {
	start := time.Now()
	for time.Since(start) < max {
		b0, t0, ok := busyJiffies()
		if !ok {
			return
		}
		time.Sleep(2 * time.Second)
		b1, t1, _ := busyJiffies()
		cores := float64(runtime.NumCPU()) * (b1 - b0) / max1(t1-t0)
		if cores < 0.25 {
			return
		}
		log.Printf("  [waiting for a quiet host: other processes use %.2f cores, waited %.0f/%.0f s]", cores, time.Since(start).Seconds(), max.Seconds())
	}
}

func max1(x float64) float64 { return max(x, 1) }

func human(b int) string {
	if b >= 1<<20 {
		return fmt.Sprintf("%d MiB", b>>20)
	}
	return fmt.Sprintf("%d KiB", b>>10)
}

// report prints, per world size and size, the medians over rounds of each
// implementation's median time and busbw, and the median of the per-round
// ratios (round i of ringmaster against round i of gloo).
func report(all []row) {
	for _, m := range strings.Split(*mode, ",") {
		var rows []row
		for _, r := range all {
			if r.Impl == "gloo" || r.Transport == m {
				rows = append(rows, r)
			}
		}
		reportMode(m, rows)
	}
	reportTLS(all)
}

// reportTLS prints, for every transport run both plain and +tls, TLS
// busbw over plain busbw per size (median of per-round ratios).
func reportTLS(all []row) {
	type key struct {
		mode string
		w, b int
	}
	byKey := map[key][]row{}
	for _, r := range all {
		if r.Impl != "gloo" {
			k := key{r.Transport, r.World, r.Bytes}
			byKey[k] = append(byKey[k], r)
		}
	}
	for _, m := range strings.Split(*mode, ",") {
		plain, ok := strings.CutSuffix(m, "+tls")
		if !ok || !slices.Contains(strings.Split(*mode, ","), plain) {
			continue
		}
		fmt.Printf("\nmutual TLS cost on transport %q: busbw with TLS / without, median of per-round ratios\n", plain)
		fmt.Printf("%2s %7s | %8s %8s | %6s\n", "n", "size", "plain", "tls", "ratio")
		for _, w := range parseInts(*worlds) {
			for _, b := range parseInts(*sizesF) {
				p, t := byKey[key{plain, w, b}], byKey[key{m, w, b}]
				if len(p) == 0 || len(t) == 0 {
					continue
				}
				var ratios, pb, tb []float64
				for i := range min(len(p), len(t)) {
					ratios = append(ratios, t[i].BusBW/p[i].BusBW)
					pb, tb = append(pb, p[i].BusBW), append(tb, t[i].BusBW)
				}
				fmt.Printf("%2d %7s | %8.3f %8.3f | %6.2f\n", w, human(b), median(pb), median(tb), median(ratios))
			}
		}
	}
}

func reportMode(mode string, all []row) {
	type key struct{ w, b int }
	ours := map[key][]row{}
	gloo := map[key][]row{}
	var keys []key
	for _, r := range all {
		k := key{r.World, r.Bytes}
		if r.Impl == "gloo" {
			gloo[k] = append(gloo[k], r)
			continue
		}
		if _, seen := ours[k]; !seen {
			keys = append(keys, k)
		}
		ours[k] = append(ours[k], r)
	}
	f := func(rs []row, get func(row) float64) float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, get(r))
		}
		return median(v)
	}
	ratio := func(a, b []row, get func(row) float64) float64 {
		var v []float64
		for i := range min(len(a), len(b)) {
			v = append(v, get(a[i])/get(b[i]))
		}
		return median(v)
	}
	tm := func(r row) float64 { return r.MedianUS }
	bus := func(r row) float64 { return r.BusBW }
	fmt.Printf("\nall-reduce fp32 sum, 127.0.0.1, ringmaster transport %q, medians over %d alternating rounds (ratio = median of per-round ratios)\n", mode, *rounds)
	fmt.Printf("%2s %7s | %10s %8s %8s %5s | %10s %8s | %9s %9s\n", "n", "size", "rm us", "rm alg", "rm bus", "ok", "gloo us", "gloo bus", "busbw x", "gloo/rm t")
	for _, k := range keys {
		o, g := ours[k], gloo[k]
		ok := true
		for _, r := range o {
			ok = ok && r.Correct
		}
		line := fmt.Sprintf("%2d %7s | %10.1f %8.3f %8.3f %5v |", k.w, human(k.b), f(o, tm), f(o, func(r row) float64 { return r.AlgBW }), f(o, bus), ok)
		if len(g) > 0 {
			line += fmt.Sprintf(" %10.1f %8.3f | %9.2f %9.2f", f(g, tm), f(g, bus), ratio(o, g, bus), ratio(g, o, tm))
		}
		fmt.Println(line)
	}
	fmt.Println("GB/s = 1e9 B/s; busbw = algbw·2(n−1)/n; 'busbw x' = ringmaster busbw / gloo busbw; 'gloo/rm t' = gloo time / ringmaster time.")
}
