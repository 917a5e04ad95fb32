package vecmath

// SmallGemm computes, for i < m, C[i,0:n] = beta·C[i,0:n] + alpha·Σ_{p<k}
// A(i,p)·B[p,0:n] where A(i,p) = a[i·am + p·ak] (row-major A is am=lda,
// ak=1; a transposed one am=1, ak=lda), B and C are row-major with row
// strides ldb and ldc, and beta is 0 (C is not read) or 1. It does no
// packing and no blocking: it is for products whose operands sit in L1,
// such as one attention head's (T,T)·(T,hs). It panics on a bad dimension
// or a short slice.
func SmallGemm(m, n, k int, alpha float32, a []float32, am, ak int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if beta != 0 && beta != 1 {
		panic("vecmath: SmallGemm beta must be 0 or 1")
	}
	if k < 0 || am < 0 || ak < 0 || ldb < n || ldc < n {
		panic("vecmath: SmallGemm bad dimensions")
	}
	if len(c) < (m-1)*ldc+n || (k > 0 && (len(a) < (m-1)*am+(k-1)*ak+1 || len(b) < (k-1)*ldb+n)) {
		panic("vecmath: SmallGemm slice too short")
	}
	if k == 0 {
		if beta == 0 {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	smallGemmAt(m, n, k, alpha, a, am, ak, b, ldb, beta, c, ldc, cpuLevel())
}

// smallGemmAt is SmallGemm (no checks, k ≥ 1) with the assembly of level
// (levelGo: none) and plain Go for the columns it leaves.
func smallGemmAt(m, n, k int, alpha float32, a []float32, am, ak int, b []float32, ldb int, beta float32, c []float32, ldc int, level int) {
	done := smallGemmLevel(m, n, k, alpha, a, am, ak, b, ldb, beta, c, ldc, level)
	if done < n {
		smallGemmGo(m, n-done, k, alpha, a, am, ak, b[done:], ldb, beta, c[done:], ldc)
	}
}

// smallGemmGo is SmallGemm in plain Go (no checks).
func smallGemmGo(m, n, k int, alpha float32, a []float32, am, ak int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			var s float32
			for p := 0; p < k; p++ {
				s += a[i*am+p*ak] * b[p*ldb+j]
			}
			if beta == 0 {
				row[j] = alpha * s
			} else {
				row[j] += alpha * s
			}
		}
	}
}
