package model

import (
	"math"

	"github.com/ringmaster-ml/ringmaster/pkg/vecmath"
)

// ActForward applies the activation element-wise: out[i] = f(inp[i]).
// GELU runs on vecmath's float32 erf kernel (within ~2e-7 of the float64
// reference, actForwardRef); the other activations are the reference loops.
func ActForward(act Activation, out, inp []float32) { actForward(act, out, inp) }

func actForward(act Activation, out, inp []float32) {
	if act == GELU {
		vecmath.Gelu(out, inp)
		return
	}
	actForwardRef(act, out, inp)
}

// actForwardRef is the float64 reference of ActForward.
func actForwardRef(act Activation, out, inp []float32) {
	out = out[:len(inp)]
	switch act {
	case GELU:
		for i, x := range inp {
			out[i] = float32(0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2)))
		}
	case GELUTanh:
		for i, x := range inp {
			xf := float64(x)
			out[i] = float32(0.5 * xf * (1 + math.Tanh(geluK*(xf+0.044715*xf*xf*xf))))
		}
	case ReLU:
		for i, x := range inp {
			out[i] = max(x, 0)
		}
	default:
		panic("model: unknown activation " + string(act))
	}
}

// geluK is sqrt(2/π).
const geluK = 0.7978845608028654

// ActBackward accumulates dinp[i] += f'(inp[i])·dout[i]. GELU runs on
// vecmath's kernel (within ~1e-6 of the float64 reference, actBackwardRef).
func ActBackward(act Activation, dinp, dout, inp []float32) { actBackward(act, dinp, dout, inp) }

func actBackward(act Activation, dinp, dout, inp []float32) {
	if act == GELU {
		vecmath.GeluGrad(dinp, dout, inp)
		return
	}
	actBackwardRef(act, dinp, dout, inp)
}

// actBackwardRef is the float64 reference of ActBackward.
func actBackwardRef(act Activation, dinp, dout, inp []float32) {
	dinp = dinp[:len(inp)]
	switch act {
	case GELU:
		for i, x := range inp {
			xf := float64(x)
			cdf := 0.5 * (1 + math.Erf(xf/math.Sqrt2))
			pdf := math.Exp(-0.5*xf*xf) / math.Sqrt(2*math.Pi)
			dinp[i] += float32(cdf+xf*pdf) * dout[i]
		}
	case GELUTanh:
		for i, x := range inp {
			xf := float64(x)
			u := geluK * (xf + 0.044715*xf*xf*xf)
			th := math.Tanh(u)
			du := geluK * (1 + 3*0.044715*xf*xf)
			dinp[i] += float32(0.5*(1+th)+0.5*xf*(1-th*th)*du) * dout[i]
		}
	case ReLU:
		for i, x := range inp {
			if x > 0 {
				dinp[i] += dout[i]
			}
		}
	default:
		panic("model: unknown activation " + string(act))
	}
}
