package model

import "context"

// attnSub is a post-LN attention sub-layer:
// out = LN(xq + Dropout(out_proj(Attention(q_proj(xq), k_proj(xkv), v_proj(xkv))))).
type attnSub struct {
	q, k, v, out Linear
	attn         Attention
	ln           LayerNorm
}

// ffnSub is a post-LN feed-forward sub-layer: out = LN(x + Dropout(fc2(act(fc1(x))))).
type ffnSub struct {
	fc1, fc2 Linear
	ln       LayerNorm
}

// attnActs is what an attnSub saves; Nq = B·Tq query rows, Nk = B·Tk key rows.
type attnActs struct {
	q, y         []float32 // (Nq,C)
	k, v         []float32 // (Nk,C)
	att, attMask []float32 // (B,NH,Tq,Tk)
	mask         []float32 // (Nq,C) dropout mask on out_proj
	r            []float32 // (Nq,C) residual sum, LN input
	mean, rstd   []float32 // (Nq)
	out          []float32 // (Nq,C)
}

// ffnActs is what an ffnSub saves for N rows.
type ffnActs struct {
	pre, act   []float32 // (N,H)
	mask, r    []float32 // (N,C)
	mean, rstd []float32 // (N)
	out        []float32 // (N,C)
}

// reserve sizes the buffers; Cl = C·NH/n_head is the width of the local heads.
func (a *attnActs) reserve(B, Tq, Tk, C, Cl, NH int) {
	Nq, Nk := B*Tq, B*Tk
	a.q, a.y, a.mask, a.r, a.out = grow(a.q, Nq*Cl), grow(a.y, Nq*Cl), grow(a.mask, Nq*C), grow(a.r, Nq*C), grow(a.out, Nq*C)
	a.k, a.v = grow(a.k, Nk*Cl), grow(a.v, Nk*Cl)
	a.att, a.attMask = grow(a.att, B*NH*Tq*Tk), grow(a.attMask, B*NH*Tq*Tk)
	a.mean, a.rstd = grow(a.mean, Nq), grow(a.rstd, Nq)
}

func (a *ffnActs) reserve(N, C, H int) {
	a.pre, a.act = grow(a.pre, N*H), grow(a.act, N*H)
	a.mask, a.r, a.out = grow(a.mask, N*C), grow(a.r, N*C), grow(a.out, N*C)
	a.mean, a.rstd = grow(a.mean, N), grow(a.rstd, N)
}

// forward runs the sub-layer on xq (B·Tq,C) attending over xkv (B·Tk,C).
func (l *attnSub) forward(ctx context.Context, m *EncDec, a *attnActs, xq, xkv []float32, B, Tq, Tk int, keyValid []uint8, train bool) error {
	p := m.params
	Nq, Nk := B*Tq, B*Tk
	r := a.r[:Nq*m.cfg.NEmbd]
	l.q.Forward(p, a.q, xq, Nq)
	l.k.Forward(p, a.k, xkv, Nk)
	l.v.Forward(p, a.v, xkv, Nk)
	l.attn.Forward(m.tp.attnRNG(m.rng), m.attnArgs(a, B, Tq, Tk, keyValid), train)
	if err := m.tp.rowForward(ctx, p, &l.out, r, a.y, Nq); err != nil {
		return err
	}
	m.drop.Forward(m.rng, r, a.mask, r, train)
	ResidualForward(r, r, xq)
	l.ln.Forward(p, a.out, a.mean, a.rstd, r, Nq)
	return nil
}

// backward accumulates d loss/d xq into dxq from dout = d loss/d out. For
// self-attention (xkv is xq) dxkv is nil and the k, v paths go to dxq too.
// For cross-attention this rank's k and v projections accumulate their part
// of d loss/d xkv into dxkv, not yet summed over the tensor-parallel group:
// dxkv collects every decoder layer's part and the caller sums it once.
func (l *attnSub) backward(ctx context.Context, m *EncDec, a *attnActs, dxq, dxkv, dout, xq, xkv []float32, B, Tq, Tk int, keyValid []uint8, train bool) error {
	p, s := m.params, &m.s
	C, Cl := m.cfg.NEmbd, m.tp.part(m.cfg.NEmbd)
	Nq, Nk := B*Tq, B*Tk
	dr := s.dr[:Nq*C]
	clear(dr)
	l.ln.Backward(p, dr, dout, a.r, a.mean, a.rstd, Nq)
	addTo(dxq, dr) // residual
	m.dropInPlace(dr, a.mask, train)
	dy := s.dy[:Nq*Cl]
	clear(dy)
	m.tp.rowBackward(p, &l.out, dy, dr, a.y, Nq, 1)
	dq, dk, dv := s.dq[:Nq*Cl], s.dk[:Nk*Cl], s.dv[:Nk*Cl]
	clear(dq)
	clear(dk)
	clear(dv)
	l.attn.Backward(m.attnArgs(a, B, Tq, Tk, keyValid), AttnGrads{DQ: dq, DK: dk, DV: dv, DOut: dy}, train)
	dcol := dr // d loss/d xq through the projections, summed over the tensor-parallel group (f)
	clear(dcol)
	l.q.Backward(p, dcol, dq, xq, Nq)
	dkv := dxkv
	if dkv == nil {
		dkv = dcol
	}
	l.k.Backward(p, dkv, dk, xkv, Nk)
	l.v.Backward(p, dkv, dv, xkv, Nk)
	if err := m.tp.reduce(ctx, dcol); err != nil {
		return err
	}
	addTo(dxq, dcol)
	return nil
}

// forward runs the sub-layer on x (N,C).
func (f *ffnSub) forward(ctx context.Context, m *EncDec, a *ffnActs, x []float32, N int, train bool) error {
	p := m.params
	C, H := m.cfg.NEmbd, m.tp.part(m.cfg.NHidden)
	pre, act, r := a.pre[:N*H], a.act[:N*H], a.r[:N*C]
	f.fc1.Forward(p, pre, x, N)
	ActForward(m.cfg.Activation, act, pre)
	if err := m.tp.rowForward(ctx, p, &f.fc2, r, act, N); err != nil {
		return err
	}
	m.drop.Forward(m.rng, r, a.mask, r, train)
	ResidualForward(r, r, x)
	f.ln.Forward(p, a.out, a.mean, a.rstd, r, N)
	return nil
}

// backward accumulates d loss/d x into dx from dout = d loss/d out.
func (f *ffnSub) backward(ctx context.Context, m *EncDec, a *ffnActs, dx, dout, x []float32, N int, train bool) error {
	p, s := m.params, &m.s
	C, H := m.cfg.NEmbd, m.tp.part(m.cfg.NHidden)
	dr := s.dr[:N*C]
	clear(dr)
	f.ln.Backward(p, dr, dout, a.r, a.mean, a.rstd, N)
	addTo(dx, dr) // residual
	m.dropInPlace(dr, a.mask, train)
	dact, dpre := s.dact[:N*H], s.dpre[:N*H]
	clear(dact)
	m.tp.rowBackward(p, &f.fc2, dact, dr, a.act, N, 1)
	clear(dpre)
	ActBackward(m.cfg.Activation, dpre, dact, a.pre[:N*H])
	dcol := dr // d loss/d x through fc1, summed over the tensor-parallel group (f)
	clear(dcol)
	f.fc1.Backward(p, dcol, dpre, x, N)
	if err := m.tp.reduce(ctx, dcol); err != nil {
		return err
	}
	addTo(dx, dcol)
	return nil
}
