package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// guard is written around and between the rows of every operand; a kernel
// that touches it fails the test.
const guard = float32(-7777.25)

// mat is a row-major matrix embedded in a guarded buffer: data[off:] holds
// rows of length cols with stride ld, and every other element is guard.
type mat struct {
	rows, cols, ld int
	buf            []float32
	off            int
}

func newMat(rng *rand.Rand, rows, cols, pad int) *mat {
	ld := max(1, cols+pad)
	const margin = 5
	n := margin*2 + ld*rows
	m := &mat{rows: rows, cols: cols, ld: ld, buf: make([]float32, n), off: margin}
	for i := range m.buf {
		m.buf[i] = guard
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			m.buf[m.off+i*ld+j] = float32(rng.Float64()*2 - 1)
		}
	}
	return m
}

// data is the slice handed to Sgemm: exactly as long as BLAS requires.
func (m *mat) data() []float32 {
	if m.rows == 0 {
		return m.buf[m.off:m.off]
	}
	return m.buf[m.off : m.off+(m.rows-1)*m.ld+m.cols]
}

func (m *mat) at(i, j int) float32 { return m.buf[m.off+i*m.ld+j] }

func (m *mat) clone() *mat {
	c := *m
	c.buf = append([]float32(nil), m.buf...)
	return &c
}

// checkGuards fails if any element outside the matrix changed from want.
func (m *mat) checkGuards(t *testing.T, name string, want *mat) {
	t.Helper()
	inside := func(idx int) bool {
		idx -= m.off
		if idx < 0 || m.rows == 0 {
			return false
		}
		i, j := idx/m.ld, idx%m.ld
		return i < m.rows && j < m.cols
	}
	for idx, v := range m.buf {
		if !inside(idx) && math.Float32bits(v) != math.Float32bits(want.buf[idx]) {
			t.Fatalf("%s: element %d outside the matrix changed: %v", name, idx, v)
		}
	}
}

type gemmCase struct {
	tA, tB  blas.Transpose
	m, n, k int
	pad     int
}

func (c gemmCase) String() string {
	tr := func(t blas.Transpose) string {
		if t == blas.NoTrans {
			return "N"
		}
		return "T"
	}
	return fmt.Sprintf("%s%s_m%d_n%d_k%d_pad%d", tr(c.tA), tr(c.tB), c.m, c.n, c.k, c.pad)
}

// refProduct returns op(A)·op(B) and Σ|a||b| per element, accumulated in float64.
func refProduct(c gemmCase, a, b *mat) (prod, mag []float64) {
	prod = make([]float64, c.m*c.n)
	mag = make([]float64, c.m*c.n)
	opA := func(i, p int) float64 {
		if c.tA == blas.NoTrans {
			return float64(a.at(i, p))
		}
		return float64(a.at(p, i))
	}
	opB := func(p, j int) float64 {
		if c.tB == blas.NoTrans {
			return float64(b.at(p, j))
		}
		return float64(b.at(j, p))
	}
	for i := 0; i < c.m; i++ {
		for j := 0; j < c.n; j++ {
			var s, s2 float64
			for p := 0; p < c.k; p++ {
				x := opA(i, p) * opB(p, j)
				s += x
				s2 += math.Abs(x)
			}
			prod[i*c.n+j], mag[i*c.n+j] = s, s2
		}
	}
	return prod, mag
}

var testShapes = [][3]int{ // m, n, k
	{0, 0, 0}, {0, 5, 3}, {5, 0, 3}, {5, 3, 0}, {1, 1, 1}, {1, 7, 13}, {13, 1, 7},
	{7, 13, 31}, {13, 7, 127}, {31, 127, 13}, {127, 31, 7}, {14, 32, 256},
	{15, 33, 257}, {28, 64, 1}, {127, 127, 127}, {300, 70, 300}, {29, 2100, 9},
	// row tilings with the AVX-512 path's 8-row kernel (A read in place):
	// only short tiles, long + short, long + a partial short one, a second
	// mc block
	{16, 40, 20}, {22, 33, 17}, {20, 32, 5}, {128, 64, 384}, {181, 32, 3},
	// depths past one block (kc, and kcOne on the AVX-512 path)
	{30, 40, 385}, {17, 70, 777},
}

// testPaths lists every path this CPU (and build) can run, Generic always.
func testPaths() []Path {
	var ps []Path
	for _, p := range []Path{Generic, AVX2, AVX512, OpenBLAS} {
		if Supported(p) {
			ps = append(ps, p)
		}
	}
	return ps
}

func newImpl(t testing.TB, p Path, threads int) *Impl {
	t.Helper()
	im, err := New(Options{Path: p, Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	if p != Auto && im.Path() != p {
		t.Fatalf("Path() = %v, want %v", im.Path(), p)
	}
	return im
}

// runCase checks every alpha/beta combination of one shape against the
// float64 reference. Tolerance: |got−want| ≤ 1e-5·√k·(|α|·Σ|a·b| + |β·c|) + 1e-30,
// i.e. relative to the magnitude of the terms summed, growing like the
// random-walk rounding error of a length-k float32 dot product.
func runCase(t *testing.T, im *Impl, c gemmCase, rng *rand.Rand) {
	t.Helper()
	ar, ac := c.m, c.k
	if c.tA != blas.NoTrans {
		ar, ac = c.k, c.m
	}
	br, bc := c.k, c.n
	if c.tB != blas.NoTrans {
		br, bc = c.n, c.k
	}
	a, b := newMat(rng, ar, ac, c.pad), newMat(rng, br, bc, c.pad+1)
	c0 := newMat(rng, c.m, c.n, c.pad+2)
	a0, b0 := a.clone(), b.clone()
	prod, mag := refProduct(c, a, b)
	if im.precision == BF16 {
		// The same math on the bf16-rounded inputs: the kernel must round
		// A and B itself (they are passed unrounded) and add in fp32.
		ra, rb := a.clone(), b.clone()
		RoundBF16Slice(ra.buf, ra.buf)
		RoundBF16Slice(rb.buf, rb.buf)
		prod, mag = refProduct(c, ra, rb)
	}
	tol := 1e-5 * math.Sqrt(float64(max(c.k, 1)))
	for _, alpha := range []float32{1, 0.5, 0} {
		for _, beta := range []float32{0, 1, -0.3} {
			cm := c0.clone()
			if beta == 0 { // C must not be read: NaNs must not propagate
				for i := 0; i < c.m; i++ {
					for j := 0; j < c.n; j++ {
						cm.buf[cm.off+i*cm.ld+j] = float32(math.NaN())
					}
				}
			}
			im.Sgemm(c.tA, c.tB, c.m, c.n, c.k, alpha, a.data(), a.ld, b.data(), b.ld, beta, cm.data(), cm.ld)
			name := fmt.Sprintf("%v alpha=%v beta=%v", c, alpha, beta)
			a.checkGuards(t, name+" A", a0)
			b.checkGuards(t, name+" B", b0)
			cm.checkGuards(t, name+" C", c0)
			for idx, v := range a.buf {
				if v != a0.buf[idx] {
					t.Fatalf("%s: A modified", name)
				}
			}
			for i := 0; i < c.m; i++ {
				for j := 0; j < c.n; j++ {
					cij := 0.0
					if beta != 0 {
						cij = float64(c0.at(i, j))
					}
					want := float64(alpha)*prod[i*c.n+j] + float64(beta)*cij
					bound := tol*(math.Abs(float64(alpha))*mag[i*c.n+j]+math.Abs(float64(beta)*cij)) + 1e-30
					got := float64(cm.at(i, j))
					if !(math.Abs(got-want) <= bound) {
						t.Fatalf("%s: C[%d,%d] = %v, want %v (±%.3g)", name, i, j, got, want, bound)
					}
				}
			}
		}
	}
}

// TestSgemmMatchesReference runs every supported path, on 1 and 2 threads,
// as chosen by the heuristics and with them overridden: "wide" never picks
// the AVX2 kernel on the AVX512 path, "packed" always packs both operands.
func TestSgemmMatchesReference(t *testing.T) {
	for _, p := range testPaths() {
		for _, threads := range []int{1, 2} {
			for _, variant := range []string{"default", "wide", "packed"} {
				library := p == Generic || p == OpenBLAS // someone else's Sgemm: no variants of ours
				if (variant == "wide" && p != AVX512) || (variant != "default" && library) {
					continue
				}
				if (p == Generic || variant != "default") && threads > 1 {
					continue // gonum ignores Threads; the variants differ in kernels, not in threading
				}
				if raceEnabled && (threads == 1 || variant != "default") {
					continue // -race is for the pool; the arithmetic is covered by the plain run
				}
				t.Run(fmt.Sprintf("%v/threads=%d/%s", p, threads, variant), func(t *testing.T) {
					im := newImpl(t, p, threads)
					switch variant {
					case "wide":
						im.narrow = nil
					case "packed":
						k := *im.kern
						k.direct = -1
						im.kern = &k
						if im.narrow != nil {
							n := *im.narrow
							n.direct = -1
							im.narrow = &n
						}
					}
					rng := rand.New(rand.NewPCG(1, uint64(p)))
					for _, s := range testShapes {
						if raceEnabled && s[0]*s[1]*s[2] > 100000 {
							continue // too slow under -race; covered by the plain run
						}
						for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
							for _, tB := range []blas.Transpose{blas.NoTrans, blas.Trans} {
								for _, pad := range []int{0, 3} {
									runCase(t, im, gemmCase{tA: tA, tB: tB, m: s[0], n: s[1], k: s[2], pad: pad}, rng)
								}
							}
						}
					}
				})
			}
		}
	}
}

func TestSgemmConjTransIsTrans(t *testing.T) {
	for _, p := range testPaths() {
		im := newImpl(t, p, 1)
		rng := rand.New(rand.NewPCG(2, 2))
		runCase(t, im, gemmCase{tA: blas.ConjTrans, tB: blas.ConjTrans, m: 17, n: 35, k: 9}, rng)
	}
}

func TestSgemmConcurrent(t *testing.T) {
	for _, p := range testPaths() {
		t.Run(p.String(), func(t *testing.T) {
			im := newImpl(t, p, 2)
			shapes := [][3]int{{128, 128, 128}, {140, 60, 130}, {33, 200, 64}, {7, 9, 11}} // the first two split over the pool
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for gi := 0; gi < 8; gi++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(gi), 3))
					for it := 0; it < 6; it++ {
						s := shapes[(gi+it)%len(shapes)]
						c := gemmCase{tA: blas.Transpose(blas.NoTrans + blas.Transpose(it%2)), tB: blas.NoTrans, m: s[0], n: s[1], k: s[2]}
						if it%2 == 1 {
							c.tA = blas.Trans
						}
						if err := checkOnce(im, c, rng); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// checkOnce runs one alpha=1, beta=0 product and compares it with the reference.
func checkOnce(im *Impl, c gemmCase, rng *rand.Rand) error {
	ar, ac := c.m, c.k
	if c.tA != blas.NoTrans {
		ar, ac = c.k, c.m
	}
	a, b, cm := newMat(rng, ar, ac, 0), newMat(rng, c.k, c.n, 0), newMat(rng, c.m, c.n, 0)
	im.Sgemm(c.tA, c.tB, c.m, c.n, c.k, 1, a.data(), a.ld, b.data(), b.ld, 0, cm.data(), cm.ld)
	prod, mag := refProduct(c, a, b)
	tol := 1e-5 * math.Sqrt(float64(c.k))
	for i := 0; i < c.m; i++ {
		for j := 0; j < c.n; j++ {
			if d := math.Abs(float64(cm.at(i, j)) - prod[i*c.n+j]); !(d <= tol*mag[i*c.n+j]) {
				return fmt.Errorf("%v: C[%d,%d] off by %g", c, i, j, d)
			}
		}
	}
	return nil
}

func TestSgemmNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	for _, p := range testPaths() {
		if p == Generic {
			continue // gonum's own Sgemm allocates; not ours to fix
		}
		for _, threads := range []int{1, 2} {
			im := newImpl(t, p, threads)
			const n = 128
			a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
			f := func() { im.Sgemm(blas.NoTrans, blas.Trans, n, n, n, 1, a, n, b, n, 0, c, n) }
			f()
			if allocs := testing.AllocsPerRun(20, f); allocs != 0 {
				t.Errorf("%v threads=%d: %v allocations per call, want 0", p, threads, allocs)
			}
		}
	}
}

func TestCloseThenSgemm(t *testing.T) {
	for _, p := range testPaths() {
		im := newImpl(t, p, 2)
		if err := im.Close(); err != nil {
			t.Fatal(err)
		}
		if err := im.Close(); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(4, 4))
		if err := checkOnce(im, gemmCase{tA: blas.NoTrans, tB: blas.NoTrans, m: 100, n: 100, k: 100}, rng); err != nil {
			t.Error(err)
		}
	}
}

func TestSgemmPanicsLikeGonum(t *testing.T) {
	im := newImpl(t, Auto, 1)
	var ref gonum.Implementation
	a, b, c := make([]float32, 12), make([]float32, 12), make([]float32, 12)
	cases := map[string]func(f blas.Float32){
		"badTrans": func(f blas.Float32) { f.Sgemm('x', blas.NoTrans, 3, 4, 4, 1, a, 4, b, 4, 0, c, 4) },
		"mLT0":     func(f blas.Float32) { f.Sgemm(blas.NoTrans, blas.NoTrans, -1, 4, 4, 1, a, 4, b, 4, 0, c, 4) },
		"badLdA":   func(f blas.Float32) { f.Sgemm(blas.NoTrans, blas.NoTrans, 3, 4, 4, 1, a, 3, b, 4, 0, c, 4) },
		"badLdC":   func(f blas.Float32) { f.Sgemm(blas.NoTrans, blas.NoTrans, 3, 4, 4, 1, a, 4, b, 4, 0, c, 3) },
		"shortA":   func(f blas.Float32) { f.Sgemm(blas.NoTrans, blas.NoTrans, 4, 3, 4, 1, a, 4, b, 3, 0, c, 3) },
		"shortC":   func(f blas.Float32) { f.Sgemm(blas.NoTrans, blas.NoTrans, 3, 5, 2, 1, a, 2, b, 5, 0, c, 5) },
	}
	for name, f := range cases {
		want, got := panicOf(func() { f(ref) }), panicOf(func() { f(im) })
		if want == nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: panic %v, gonum panics %v", name, got, want)
		}
	}
}

func panicOf(f func()) (r any) {
	defer func() { r = recover() }()
	f()
	return nil
}

func TestNewPaths(t *testing.T) {
	im := newImpl(t, Generic, 0)
	if im.Threads() < 1 {
		t.Errorf("Threads() = %d", im.Threads())
	}
	auto, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer auto.Close()
	if auto.Path() == Auto || !Supported(auto.Path()) {
		t.Errorf("Auto resolved to %v", auto.Path())
	}
	for _, p := range []Path{AVX512, AVX2, OpenBLAS} {
		im, err := New(Options{Path: p})
		if err == nil {
			im.Close()
		}
		if Supported(p) != (err == nil) {
			t.Errorf("New(%v) error %v, Supported %v", p, err, Supported(p))
		}
		if err != nil && !errors.Is(err, ErrUnsupported) {
			t.Errorf("New(%v) error %v does not wrap ErrUnsupported", p, err)
		}
	}
	if _, err := New(Options{Path: Path(99)}); err == nil {
		t.Error("New(Path(99)) succeeded")
	}
	for _, s := range []string{"auto", "AVX512", "avx2", "generic", "openblas", ""} {
		p, err := ParsePath(s)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", s, err)
		}
		if s != "" && p.String() != map[string]string{"AVX512": "avx512"}[s] && p.String() != s {
			t.Errorf("ParsePath(%q) = %v", s, p)
		}
	}
	if _, err := ParsePath("sse"); err == nil {
		t.Error(`ParsePath("sse") succeeded`)
	}
}

func TestBlas32Use(t *testing.T) {
	im := newImpl(t, Auto, 2)
	blas32.Use(im)
	t.Cleanup(func() { blas32.Use(gonum.Implementation{}) })
	a := blas32.General{Rows: 2, Cols: 3, Stride: 3, Data: []float32{1, 2, 3, 4, 5, 6}}
	b := blas32.General{Rows: 3, Cols: 2, Stride: 2, Data: []float32{1, 0, 0, 1, 1, 1}}
	c := blas32.General{Rows: 2, Cols: 2, Stride: 2, Data: make([]float32, 4)}
	blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, a, b, 0, c)
	if want := []float32{4, 5, 10, 11}; fmt.Sprint(c.Data) != fmt.Sprint(want) {
		t.Errorf("Gemm via blas32 = %v, want %v", c.Data, want)
	}
}

// TestClaimGenerations checks the part-claiming protocol a late worker
// relies on: parts are handed out once, and a wake-up for a finished
// generation claims nothing from the call's next use.
func TestClaimGenerations(t *testing.T) {
	var c call
	c.gen = 1
	c.state.Store(uint64(1)<<32 | uint64(2)<<16)
	for want := 0; want < 2; want++ {
		part, parts, ok := c.claim(1)
		if !ok || part != want || parts != 2 {
			t.Fatalf("claim %d = (%d, %d, %v)", want, part, parts, ok)
		}
	}
	if _, _, ok := c.claim(1); ok {
		t.Fatal("claimed a third part of two")
	}
	c.gen = 2
	c.state.Store(uint64(2)<<32 | uint64(3)<<16)
	if _, _, ok := c.claim(1); ok {
		t.Fatal("a stale wake-up claimed a part of the next generation")
	}
	if part, _, ok := c.claim(2); !ok || part != 0 {
		t.Fatalf("claim in generation 2 = (%d, %v)", part, ok)
	}
}

// TestWaitFinish checks the hand-off between a caller that has stopped
// spinning and the worker that finishes the last part: the caller returns
// only once the part is done, and a finish for an older generation of the
// call sends nothing.
func TestWaitFinish(t *testing.T) {
	c := &call{done: make(chan struct{}, 1)}
	for gen := uint32(1); gen <= 3; gen++ {
		c.pending.Store(1)
		c.waiting.Store(uint64(gen) << 2)
		var finished atomic.Bool
		go func() {
			time.Sleep(callerSpin + 2*time.Millisecond) // outlast the caller's spin
			c.finish(gen - 1)                           // stale: must not signal
			finished.Store(true)
			c.pending.Add(-1)
			c.finish(gen)
		}()
		c.wait(gen, callerSpin)
		if !finished.Load() || c.pending.Load() != 0 {
			t.Fatalf("generation %d: wait returned before the last part finished", gen)
		}
		if len(c.done) != 0 {
			t.Fatalf("generation %d: a stale signal is left in done", gen)
		}
	}
}
