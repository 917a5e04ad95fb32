package model

import "github.com/ringmaster-ml/ringmaster/pkg/vecmath"

// ResidualForward: out = a + b, all (N). out may alias a or b.
func ResidualForward(out, a, b []float32) { vecmath.Add(out, a, b) }

// ResidualBackward accumulates da += dout and db += dout (either may be nil).
func ResidualBackward(da, db, dout []float32) {
	n := len(dout)
	if da != nil {
		vecmath.Add(da[:n], da[:n], dout)
	}
	if db != nil {
		vecmath.Add(db[:n], db[:n], dout)
	}
}
