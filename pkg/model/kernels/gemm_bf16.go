package kernels

import (
	"unsafe"

	"github.com/ringmaster-ml/ringmaster/pkg/vecmath"
	"gonum.org/v1/gonum/blas"
)

// BF16 GEMM: C = alpha·op(A)·op(B) + beta·C with A and B rounded to bf16
// (ToBF16) and every product and sum in fp32; C stays fp32. On AVX512_BF16
// CPUs the operands are converted while they are packed — A into k-major
// panels of 14 bf16 pairs per depth pair, B into panels of 32 pairs — and
// a 14×32 VDPBF16PS micro-kernel (generated, bf16_amd64.s) accumulates two
// depth steps per instruction. Elsewhere (or with Options.BF16Portable) A
// and B are rounded to bf16 values into fp32 scratch copies and multiplied
// by the fp32 path: the same products (a product of two bf16 is exact in
// fp32), summed in a different order.

// bf16Kern is the VDPBF16PS kernel's tiling; kc counts depth elements (an
// even number: kc/2 pairs per block).
var bf16Kern = &microKernel{mr: 14, nr: 32, mc: 14 * 12, kc: 512, nc: 2048}

// bf16Space holds one goroutine's bf16 packing buffers.
type bf16Space struct {
	a, b []uint32 // packed pair panels of A (mc rows) and B (nc columns)
	rows []uint32 // 32 rows of kc/2 pairs: a row-converted operand before its transpose
	tmp  []float32
}

func newBF16Space() *bf16Space {
	k := bf16Kern
	kp := k.kc / 2
	return &bf16Space{
		a:    make([]uint32, k.mc*kp),
		b:    make([]uint32, ceilDiv(k.nc, k.nr)*k.nr*kp),
		rows: make([]uint32, 32*kp),
		tmp:  make([]float32, k.mr*k.nr),
	}
}

// BF16Native reports whether GemmBF16 runs the VDPBF16PS kernel (else the
// portable path).
func (im *Impl) BF16Native() bool { return im.bf16Native }

// GemmBF16 computes C = alpha·op(A)·op(B) + beta·C as Sgemm does, with the
// elements of A and B first rounded to bf16 (round to nearest even) and
// the arithmetic in fp32. When beta is zero C is not read.
func (im *Impl) GemmBF16(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	transA, transB, ok := checkGemm(tA, tB, m, n, k, a, lda, b, ldb, c, ldc)
	if !ok || (alpha == 0 || k == 0) && beta == 1 {
		return
	}
	g := gemmArgs{tA: transA, tB: transB, m: m, n: n, k: k, alpha: alpha,
		a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc}
	if !im.bf16Native {
		im.gemmBF16Portable(&g)
		return
	}
	im.run(&g, bf16Kern, true)
}

// gemmBF16Portable rounds the operands into scratch copies (same layout,
// same strides) and runs the fp32 Sgemm on them.
func (im *Impl) gemmBF16Portable(g *gemmArgs) {
	ra, rb := roundedOperand(g.a, g.tA, g.m, g.k, g.lda), roundedOperand(g.b, g.tB, g.k, g.n, g.ldb)
	tA, tB := blas.NoTrans, blas.NoTrans
	if g.tA {
		tA = blas.Trans
	}
	if g.tB {
		tB = blas.Trans
	}
	im.sgemm32(tA, tB, g.m, g.n, g.k, g.alpha, ra, g.lda, rb, g.ldb, g.beta, g.c, g.ldc)
}

// roundedOperand returns a copy of the op-shaped (rows×cols) operand x,
// stored with stride ld (transposed when trans), with every element it
// uses rounded to bf16.
func roundedOperand(x []float32, trans bool, rows, cols, ld int) []float32 {
	if trans {
		rows, cols = cols, rows
	}
	if rows == 0 || cols == 0 {
		return x
	}
	out := make([]float32, ld*(rows-1)+cols)
	for r := 0; r < rows; r++ {
		RoundBF16Slice(out[r*ld:r*ld+cols], x[r*ld:r*ld+cols])
	}
	return out
}

// f32 views a []uint32 as float32s (bit moves only: vecmath.Transpose).
func f32(s []uint32) []float32 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&s[0])), len(s))
}

// gemmRectBF16 is gemmRect for the bf16 kernel: C[m0:m1, n0:n1] of g.
func gemmRectBF16(ws *workspace, g *gemmArgs, m0, m1, n0, n1 int) {
	if g.alpha == 0 || g.k == 0 {
		scaleRect(g, m0, m1, n0, n1)
		return
	}
	if ws.bf == nil {
		ws.bf = newBF16Space()
	}
	bs, kern := ws.bf, bf16Kern
	mr, nr := kern.mr, kern.nr
	for jc := n0; jc < n1; jc += kern.nc {
		nc := min(kern.nc, n1-jc)
		for pc := 0; pc < g.k; pc += kern.kc {
			kc := min(kern.kc, g.k-pc)
			kp := ceilDiv(kc, 2)
			beta := g.beta
			if pc > 0 {
				beta = 1
			}
			packBBF16(bs, g, pc, kc, jc, nc)
			for ic := m0; ic < m1; ic += kern.mc {
				mc := min(kern.mc, m1-ic)
				packABF16(bs, g, ic, mc, pc, kc)
				for jr := 0; jr < nc; jr += nr {
					w := min(nr, nc-jr)
					for ir := 0; ir < mc; ir += mr {
						h := min(mr, mc-ir)
						off := (ic+ir)*g.ldc + jc + jr
						if h == mr && w == nr {
							kern14x32AVX512BF16(kp, &bs.a[ir*kp], mr, &bs.b[jr*kp], nr, &g.c[off], g.ldc, g.alpha, beta)
							continue
						}
						kern14x32AVX512BF16(kp, &bs.a[ir*kp], mr, &bs.b[jr*kp], nr, &bs.tmp[0], nr, g.alpha, 0)
						mergeEdge(g.c[off:], g.ldc, bs.tmp, nr, h, w, beta)
					}
				}
			}
		}
	}
}

// packBBF16 packs op(B)[pc:pc+kc, jc:jc+nc] into 32-column panels of bf16
// pairs: panel q holds, for depth pair p, columns jc+32q.. as 32
// consecutive words bf16(B[2p][j]) | bf16(B[2p+1][j])<<16; columns past nc
// and a missing last odd depth are zero.
func packBBF16(bs *bf16Space, g *gemmArgs, pc, kc, jc, nc int) {
	const nr = 32
	kp := ceilDiv(kc, 2)
	for jp := 0; jp < nc; jp += nr {
		w := min(nr, nc-jp)
		d := bs.b[jp*kp : jp*kp+kp*nr]
		if !g.tB {
			for q := 0; q < kp; q++ {
				row := d[q*nr : q*nr+nr]
				p := pc + 2*q
				r0 := g.b[p*g.ldb+jc+jp:][:w]
				var r1 []float32
				if 2*q+1 < kc {
					r1 = g.b[(p+1)*g.ldb+jc+jp:][:w]
				}
				convertPairs(row, r0, r1)
				clear(row[w:])
			}
			continue
		}
		// Transposed B: column j of op(B) is row j of b, its depth pairs
		// adjacent: convert the rows, then transpose words.
		rows := bs.rows[:nr*kp]
		for c := 0; c < nr; c++ {
			r := rows[c*kp : c*kp+kp]
			if c >= w {
				clear(r)
				continue
			}
			convertRow(r, g.b[(jc+jp+c)*g.ldb+pc:][:kc])
		}
		vecmath.Transpose(f32(d), f32(rows), nr, kp, kp)
	}
}

// packABF16 packs op(A)[ic:ic+mc, pc:pc+kc] into k-major 14-row panels of
// bf16 pairs: panel q holds, for depth pair p, rows ic+14q.. as 14
// consecutive words; rows past mc and a missing last odd depth are zero.
func packABF16(bs *bf16Space, g *gemmArgs, ic, mc, pc, kc int) {
	const mr = 14
	kp := ceilDiv(kc, 2)
	if g.tA {
		// op(A)(i,p) = a[p*lda+i]: a depth pair is two rows of a.
		pairs := bs.rows[:mc]
		for q := 0; q < kp; q++ {
			p := pc + 2*q
			r0 := g.a[p*g.lda+ic:][:mc]
			var r1 []float32
			if 2*q+1 < kc {
				r1 = g.a[(p+1)*g.lda+ic:][:mc]
			}
			convertPairs(pairs, r0, r1)
			for ip := 0; ip < mc; ip += mr {
				d := bs.a[ip*kp+q*mr:][:mr]
				n := copy(d, pairs[ip:min(ip+mr, mc)])
				clear(d[n:])
			}
		}
		return
	}
	// Plain A: row i's depth pairs are adjacent; convert 14 rows, then
	// transpose words into the k-major panel.
	for ip := 0; ip < mc; ip += mr {
		rows := bs.rows[:mr*kp]
		for r := 0; r < mr; r++ {
			dst := rows[r*kp : r*kp+kp]
			if ip+r >= mc {
				clear(dst)
				continue
			}
			convertRow(dst, g.a[(ic+ip+r)*g.lda+pc:][:kc])
		}
		vecmath.Transpose(f32(bs.a[ip*kp:ip*kp+kp*mr]), f32(rows), mr, kp, kp)
	}
}

// convertRow sets the len(dst) pairs of dst from the kc = len(src) values
// of src (the last pair's high half zero when kc is odd).
func convertRow(dst []uint32, src []float32) {
	h := u16(dst)
	ConvertBF16(h, src)
	if len(src)%2 == 1 {
		h[len(src)] = 0
	}
}
