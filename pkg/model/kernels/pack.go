package kernels

import "github.com/ringmaster-ml/ringmaster/pkg/vecmath"

// microKernel is one register-blocked micro-kernel and the cache blocking
// that feeds it.
type microKernel struct {
	mr, nr     int // register tile: mr rows × nr columns of C
	mc, kc, nc int // cache blocks: A block mc×kc (L2), B block kc×nc (L3), mc%mr == 0
	// kcOne, when above kc, is the depth up to which K stays one block: a
	// K just above kc (a training step's K = 384) would otherwise take a
	// second pass over C for a thin remainder. 0: none.
	kcOne int
	// fn sets the mr×nr tile at c (row stride ldc) to alpha·Ap·Bp + beta·C,
	// not reading C when beta is zero; ap is a k-major mr×k panel (mr
	// consecutive floats per depth step, steps lda apart: mr when packed),
	// bp a k×nr panel of row stride ldb (nr when packed).
	fn func(k int, ap *float32, lda int, bp *float32, ldb int, c *float32, ldc int, alpha, beta float32)
	// fnR is fn for a row-major A panel: mr rows of stride lda.
	fnR func(k int, ap *float32, lda int, bp *float32, ldb int, c *float32, ldc int, alpha, beta float32)
	// direct is the size (m·n·k) up to which a plain (not transposed) operand
	// is read in place instead of packed: small operands stay in cache
	// anyway, and packing would cost as much as the arithmetic. Edge panels
	// are still packed (zero-padded).
	direct int
	// short, when not nil, is a kernel with fewer rows (same nr) that
	// completes the row tiling when A is read in place: rows that are not
	// a multiple of mr are covered by mr-row tiles and then short ones,
	// exactly where possible, instead of one zero-padded edge tile.
	short *microKernel
}

// rowTiles plans the row tiles of an h-row block: long tiles of kern.mr
// rows, then tiles of the short kernel (nil: none), the last tile of either
// kind possibly partial. It returns the number of long tiles. Without a
// short kernel, or when the operand is packed (k-major packing is laid out
// for mr), every tile is long.
func (kern *microKernel) rowTiles(h int, inPlace bool) (long int) {
	mr := kern.mr
	if kern.short == nil || !inPlace {
		return ceilDiv(h, mr)
	}
	sr := kern.short.mr
	for t := 0; t*sr <= h && t < mr; t++ {
		if (h-t*sr)%mr == 0 { // h = long·mr + t·sr exactly
			return (h - t*sr) / mr
		}
	}
	if h%mr <= sr {
		return h / mr // the rest fits one (partial) short tile
	}
	return ceilDiv(h, mr) // one partial long tile costs less than two short ones
}

// rowStride is the row stride of an A panel packed row-major with depth kc:
// kc rounded up to 16 floats plus 16, so that the mr rows of a panel fall in
// different L1 sets instead of aliasing at a power-of-two stride.
func rowStride(kc int) int { return (kc+15)&^15 + 16 }

// workspace holds one goroutine's packing buffers.
type workspace struct {
	a   []float32 // mc×kc, in mr-row panels
	b   []float32 // kc×nc (nc rounded up to nr), in nr-column panels
	tmp []float32 // mr×nr edge tile

	// aDirect, bDirect: this call reads A (plain or transposed) or plain B
	// in place; only edge panels are packed, at the start of a (b).
	aDirect, bDirect bool

	bf *bf16Space // bf16 packing buffers, allocated on first use
}

// newWorkspace returns buffers large enough for every non-nil kernel in ks.
func newWorkspace(ks ...*microKernel) *workspace {
	var na, nb, nt int
	for _, k := range ks {
		if k != nil {
			kc := max(k.kc, k.kcOne)
			na = max(na, k.mc*rowStride(kc))
			nb = max(nb, ceilDiv(k.nc, k.nr)*k.nr*kc)
			nt = max(nt, k.mr*k.nr)
		}
	}
	return &workspace{a: make([]float32, na), b: make([]float32, nb), tmp: make([]float32, nt)}
}

// gemmRect computes the rectangle C[m0:m1, n0:n1] of the call g. It is the
// GotoBLAS/BLIS loop nest: jc over nc-column blocks, pc over kc-deep blocks
// with B packed once per (jc, pc), ic over mc-row blocks with A packed once
// per (jc, pc, ic), then the micro-kernel over nr×mr tiles. The first depth
// block applies beta (C not read when beta is zero), later ones accumulate.
func gemmRect(kern *microKernel, ws *workspace, g *gemmArgs, m0, m1, n0, n1 int) {
	if g.alpha == 0 || g.k == 0 {
		scaleRect(g, m0, m1, n0, n1)
		return
	}
	small := macs(g.m, g.n, g.k) <= float64(kern.direct)
	ws.aDirect, ws.bDirect = small, small && !g.tB
	mr, nr := kern.mr, kern.nr
	for jc := n0; jc < n1; jc += kern.nc {
		nc := min(kern.nc, n1-jc)
		kcb := kern.kc
		if g.k <= kern.kcOne {
			kcb = g.k
		}
		for pc := 0; pc < g.k; pc += kcb {
			kc := min(kcb, g.k-pc)
			beta := g.beta
			if pc > 0 {
				beta = 1
			}
			switch {
			case ws.bDirect: // only the edge panel, at ws.b[0:]
				if e := nc % nr; e != 0 {
					packBN(ws.b, g, pc, kc, jc+nc-e, e, nr)
				}
			case g.tB:
				packBT(ws.b, g, pc, kc, jc, nc, nr)
			default:
				packBN(ws.b, g, pc, kc, jc, nc, nr)
			}
			for ic := m0; ic < m1; ic += kern.mc {
				mc := min(kern.mc, m1-ic)
				long := kern.rowTiles(mc, ws.aDirect)
				switch {
				case ws.aDirect: // only the edge panel, at ws.a[0:]
					if r0, er, emr := kern.edgeRows(mc, long); er != 0 && g.tA {
						packAT(ws.a, g, ic+r0, er, pc, kc, emr)
					} else if er != 0 {
						packAN(ws.a, g, ic+r0, er, pc, kc, emr)
					}
				case g.tA:
					packAT(ws.a, g, ic, mc, pc, kc, mr)
				default:
					packAN(ws.a, g, ic, mc, pc, kc, mr)
				}
				macroKernel(kern, ws, g, ic, mc, long, jc, nc, pc, kc, beta)
			}
		}
	}
}

// edgeRows locates the partial tile of an mc-row block planned with long
// long tiles (rowTiles): its first row, its row count (0: every tile is
// full) and the rows of the kernel that computes it.
func (kern *microKernel) edgeRows(mc, long int) (r0, rows, mr int) {
	r0, mr = long*kern.mr, kern.mr
	if r0 > mc {
		r0 -= kern.mr
		return r0, mc - r0, mr
	}
	if r0 == mc {
		return 0, 0, mr
	}
	mr = kern.short.mr // rows left after the long tiles go to short ones
	r0 += (mc - r0) / mr * mr
	if r0 == mc {
		return 0, 0, mr
	}
	return r0, mc - r0, mr
}

// scaleRect sets C[m0:m1, n0:n1] to beta·C, writing zeros without reading C
// when beta is zero.
func scaleRect(g *gemmArgs, m0, m1, n0, n1 int) {
	if g.beta == 1 {
		return
	}
	for i := m0; i < m1; i++ {
		row := g.c[i*g.ldc+n0 : i*g.ldc+n1]
		if g.beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= g.beta
		}
	}
}

// macroKernel runs the micro-kernel over the packed mc×kc block of A and
// kc×nc block of B: C[ic:ic+mc, jc:jc+nc] = alpha·A·B + beta·C. The first
// long row tiles use kern, the rest kern.short (rowTiles). Full tiles are
// written in place; edge tiles are computed into ws.tmp and merged element
// by element.
func macroKernel(kern *microKernel, ws *workspace, g *gemmArgs, ic, mc, long, jc, nc, pc, kc int, beta float32) {
	nr := kern.nr
	ars := rowStride(kc)
	for jr := 0; jr < nc; jr += nr {
		w := min(nr, nc-jr)
		bp, ldb := &ws.b[jr*kc], nr
		if ws.bDirect {
			if w == nr {
				bp, ldb = &g.b[pc*g.ldb+jc+jr], g.ldb
			} else {
				bp = &ws.b[0]
			}
		}
		k := kern
		for ir, tile := 0, 0; ir < mc; ir, tile = ir+k.mr, tile+1 {
			if tile == long {
				k = kern.short
			}
			mr := k.mr
			h := min(mr, mc-ir)
			off := (ic+ir)*g.ldc + jc + jr
			c, ldc, b := &g.c[off], g.ldc, beta
			edge := h < mr || w < nr
			if edge {
				c, ldc, b = &ws.tmp[0], nr, 0
			}
			switch {
			case g.tA && ws.aDirect && h == mr:
				k.fn(kc, &g.a[pc*g.lda+ic+ir], g.lda, bp, ldb, c, ldc, g.alpha, b)
			case g.tA && ws.aDirect:
				k.fn(kc, &ws.a[0], mr, bp, ldb, c, ldc, g.alpha, b)
			case g.tA:
				k.fn(kc, &ws.a[ir*kc], mr, bp, ldb, c, ldc, g.alpha, b)
			case ws.aDirect && h == mr:
				k.fnR(kc, &g.a[(ic+ir)*g.lda+pc], g.lda, bp, ldb, c, ldc, g.alpha, b)
			case ws.aDirect:
				k.fnR(kc, &ws.a[0], ars, bp, ldb, c, ldc, g.alpha, b)
			default:
				k.fnR(kc, &ws.a[ir*ars], ars, bp, ldb, c, ldc, g.alpha, b)
			}
			if edge {
				mergeEdge(g.c[off:], g.ldc, ws.tmp, nr, h, w, beta)
			}
		}
	}
}

// mergeEdge sets the h×w tile dst (row stride ldd) to src + beta·dst, not
// reading dst when beta is zero.
func mergeEdge(dst []float32, ldd int, src []float32, lds, h, w int, beta float32) {
	for i := 0; i < h; i++ {
		d := dst[i*ldd:][:w]
		s := src[i*lds:][:w]
		switch beta {
		case 0:
			copy(d, s)
		case 1:
			for j, v := range s {
				d[j] += v
			}
		default:
			for j, v := range s {
				d[j] = v + beta*d[j]
			}
		}
	}
}

// packAT packs op(A)[ic:ic+mc, pc:pc+kc] for a transposed A (op(A)(i,p) =
// a[p*lda+i]) as k-major mr-row panels: panel q holds, for each depth p, rows
// ic+q·mr.. as mr consecutive floats, rows past mc zero-filled.
func packAT(dst []float32, g *gemmArgs, ic, mc, pc, kc, mr int) {
	for p := 0; p < kc; p++ {
		src := g.a[(pc+p)*g.lda+ic:][:mc]
		for ip := 0; ip < mc; ip += mr {
			d := dst[ip*kc+p*mr:][:mr]
			s := src[ip:min(ip+mr, mc)]
			switch {
			case mr == 14 && len(s) == 14:
				*(*[14]float32)(d) = [14]float32(s)
			case mr == 6 && len(s) == 6:
				*(*[6]float32)(d) = [6]float32(s)
			default:
				copy(d, s)
				clear(d[len(s):])
			}
		}
	}
}

// packAN packs op(A)[ic:ic+mc, pc:pc+kc] for a plain A (op(A)(i,p) =
// a[i*lda+p]) as row-major mr-row panels of row stride rowStride(kc): row
// copies only, rows past mc zero-filled.
func packAN(dst []float32, g *gemmArgs, ic, mc, pc, kc, mr int) {
	rs := rowStride(kc)
	rows := ceilDiv(mc, mr) * mr
	for r := 0; r < rows; r++ {
		d := dst[r*rs : r*rs+kc]
		if r < mc {
			copy(d, g.a[(ic+r)*g.lda+pc:][:kc])
		} else {
			clear(d)
		}
	}
}

// packBN packs op(B)[pc:pc+kc, jc:jc+nc] for a plain B (op(B)(p,j) =
// b[p*ldb+j]) as nr-column panels: panel q holds, for each depth p, columns
// jc+q·nr.. as nr consecutive floats, columns past nc zero-filled.
func packBN(dst []float32, g *gemmArgs, pc, kc, jc, nc, nr int) {
	for jp := 0; jp < nc; jp += nr {
		w := min(nr, nc-jp)
		d := dst[jp*kc : jp*kc+kc*nr]
		if nr == 32 && w == 32 && kc > 0 {
			_ = g.b[(pc+kc-1)*g.ldb+jc+jp+31] // bounds of the last row read
			packBN32(&d[0], &g.b[pc*g.ldb+jc+jp], g.ldb, kc)
			continue
		}
		for p := 0; p < kc; p++ {
			row := d[p*nr : p*nr+nr]
			copy(row, g.b[(pc+p)*g.ldb+jc+jp:][:w])
			clear(row[w:])
		}
	}
}

// packBT is packBN for a transposed B (op(B)(p,j) = b[j*ldb+p]): it reads
// four rows of b at a time and writes four adjacent floats per depth step.
func packBT(dst []float32, g *gemmArgs, pc, kc, jc, nc, nr int) {
	for jp := 0; jp < nc; jp += nr {
		w := min(nr, nc-jp)
		d := dst[jp*kc : jp*kc+kc*nr]
		if w == nr {
			// A full panel is a transpose (in 8×8 in-register blocks where
			// the assembly applies; AVX-512 gathers, tried first, ran at
			// ≈ 1 element per cycle).
			j := jc + jp
			vecmath.Transpose(d, g.b[j*g.ldb+pc:], nr, kc, g.ldb)
			continue
		}
		if w < nr {
			clear(d)
		}
		c := 0
		for ; c+4 <= w; c += 4 {
			j := jc + jp + c
			s0 := g.b[j*g.ldb+pc:][:kc]
			s1 := g.b[(j+1)*g.ldb+pc:][:len(s0)]
			s2 := g.b[(j+2)*g.ldb+pc:][:len(s0)]
			s3 := g.b[(j+3)*g.ldb+pc:][:len(s0)]
			for p := range s0 {
				q := d[p*nr+c:][:4]
				q[0], q[1], q[2], q[3] = s0[p], s1[p], s2[p], s3[p]
			}
		}
		for ; c < w; c++ {
			src := g.b[(jc+jp+c)*g.ldb+pc:][:kc]
			for p, v := range src {
				d[p*nr+c] = v
			}
		}
	}
}
