package model

// ResidualForward: out = a + b, all (N). out may alias a or b.
func ResidualForward(out, a, b []float32) {
	out = out[:len(a)]
	for i := range a {
		out[i] = a[i] + b[i]
	}
}

// ResidualBackward accumulates da += dout and db += dout (either may be nil).
func ResidualBackward(da, db, dout []float32) {
	if da != nil {
		addTo(da, dout)
	}
	if db != nil {
		addTo(db, dout)
	}
}
