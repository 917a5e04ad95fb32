package model

import "math"

// SinusoidalTable returns the 2017 Transformer's fixed positional encoding
// (maxLen,C): PE[pos,2i] = sin(pos/10000^(2i/C)), PE[pos,2i+1] = cos(pos/10000^(2i/C)).
// It is computed once (not a parameter) and added with AddPositional.
func SinusoidalTable(maxLen, c int) []float32 {
	pe := make([]float32, maxLen*c)
	for pos := 0; pos < maxLen; pos++ {
		for i := 0; 2*i < c; i++ {
			angle := float64(pos) / math.Pow(10000, float64(2*i)/float64(c))
			pe[pos*c+2*i] = float32(math.Sin(angle))
			if 2*i+1 < c {
				pe[pos*c+2*i+1] = float32(math.Cos(angle))
			}
		}
	}
	return pe
}

// AddPositional adds table rows 0..T-1 to every row of x (B,T,C). Its backward
// is the identity (the table has no gradient).
func AddPositional(x, table []float32, B, T, C int) {
	for b := 0; b < B; b++ {
		addTo(x[b*T*C:(b+1)*T*C], table[:T*C])
	}
}
