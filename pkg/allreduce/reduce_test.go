package allreduce

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// addTo (vectorised where the CPU allows) must give exactly the scalar sums,
// whatever the length and alignment.
func TestAddTo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 100 {
		for off := range 3 {
			dst := make([]float32, n+off)
			src := make([]float32, n+off)
			want := make([]float32, n+off)
			for i := range dst {
				dst[i], src[i] = rng.Float32()*3-1, rng.Float32()*1e3
				want[i] = dst[i]
				if i >= off {
					want[i] += src[i]
				}
			}
			addTo(dst[off:], src[off:])
			for i := range dst {
				if dst[i] != want[i] {
					t.Fatalf("n=%d off=%d: dst[%d] = %v, want %v", n, off, i, dst[i], want[i])
				}
			}
		}
	}
}

func BenchmarkAddTo(b *testing.B) {
	for _, n := range []int{128 << 10, 8 << 20} {
		dst, src := make([]float32, n), make([]float32, n)
		b.Run(fmt.Sprintf("%dKiB", n*4>>10), func(b *testing.B) {
			b.SetBytes(int64(n * 4))
			for b.Loop() {
				addTo(dst, src)
			}
		})
	}
}

// ringSchedule must order every frame exactly once, after the frame it
// depends on (same chunk, previous step), and reduce to the step-by-step
// order when the lag covers a whole step.
func TestRingSchedule(t *testing.T) {
	for steps := 1; steps <= 7; steps++ {
		for nsub := 1; nsub <= 9; nsub++ {
			for lag := 1; lag <= 10; lag++ {
				order, pos := ringSchedule(steps, nsub, lag)
				if len(order) != steps*nsub {
					t.Fatalf("steps=%d nsub=%d lag=%d: %d frames", steps, nsub, lag, len(order))
				}
				seen := map[ringFrame]bool{}
				for f, fr := range order {
					if seen[fr] || pos[fr.step][fr.chunk] != f {
						t.Fatalf("steps=%d nsub=%d lag=%d: frame %v twice or misplaced", steps, nsub, lag, fr)
					}
					seen[fr] = true
					if fr.step > 0 && pos[fr.step-1][fr.chunk] >= f {
						t.Fatalf("steps=%d nsub=%d lag=%d: %v before its dependency", steps, nsub, lag, fr)
					}
					if lag >= nsub && (fr.step != f/nsub || fr.chunk != f%nsub) {
						t.Fatalf("steps=%d nsub=%d lag=%d: frame %d is %v", steps, nsub, lag, f, fr)
					}
				}
			}
		}
	}
}
