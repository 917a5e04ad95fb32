package jobspec

import (
	"bytes"
	"fmt"
	"strings"

	model "github.com/ringmaster-ml/ringmaster/pkg/model/config"
)

// A derivedField is a field whose default is computed from other fields
// (model.n_hidden = 4·n_embd). A derived field follows its source: when an
// override changes the source, the field is re-derived, unless it is set in
// the same override or holds a value other than its derivation (then the user
// chose it, and it is kept).
//
// After defaults are filled a spec holds concrete values only, so "follows its
// source" is read off the value: a field equal to what its rule gives is taken
// as derived. To pin n_hidden at 4·n_embd's old value while changing n_embd,
// set both in one override.
type derivedField struct {
	key  string // dotted spec name
	rule string // how it is derived, for people (-print-spec)
	// derive is the field's derived value for s (ok false where the rule does
	// not apply to s, e.g. n_dec_layer on a GPT).
	derive func(s Spec) (v any, ok bool)
	get    func(s Spec) any
	clear  func(s *Spec) // back to zero: WithDefaults derives it again
}

// derivedFields are every derived field of a spec, in spec order.
var derivedFields = []derivedField{
	{
		key: "model.n_hidden", rule: "4·n_embd",
		derive: func(s Spec) (any, bool) { return 4 * s.Model.NEmbd, true },
		get:    func(s Spec) any { return s.Model.NHidden },
		clear:  func(s *Spec) { s.Model.NHidden = 0 },
	},
	{
		key: "model.n_dec_layer", rule: "n_layer",
		derive: func(s Spec) (any, bool) { return s.Model.NLayer, s.Model.Arch == model.ArchEncDec },
		get:    func(s Spec) any { return s.Model.NDecLayer },
		clear:  func(s *Spec) { s.Model.NDecLayer = 0 },
	},
	{
		key: "model.activation", rule: "the arch's (gpt gelu, bert gelu_tanh, encdec relu)",
		derive: func(s Spec) (any, bool) {
			c := model.Config{Arch: s.Model.Arch}.WithDefaults()
			return c.Activation, c.Activation != ""
		},
		get:   func(s Spec) any { return s.Model.Activation },
		clear: func(s *Spec) { s.Model.Activation = "" },
	},
	{
		key: "model.layer_norm_eps", rule: "the arch's (1e-5; bert 1e-12)",
		derive: func(s Spec) (any, bool) {
			c := model.Config{Arch: s.Model.Arch}.WithDefaults()
			return c.LayerNormEps, c.LayerNormEps != 0
		},
		get:   func(s Spec) any { return s.Model.LayerNormEps },
		clear: func(s *Spec) { s.Model.LayerNormEps = 0 },
	},
	{
		key: "train.lr_decay_iters", rule: "max(max_iters, warmup_iters+1)",
		derive: func(s Spec) (any, bool) { return max(s.Train.MaxIters, s.Train.WarmupIters+1), true },
		get:    func(s Spec) any { return s.Train.LRDecayIters },
		clear:  func(s *Spec) { s.Train.LRDecayIters = 0 },
	},
	{
		key: "parallel.min_workers", rule: "tp",
		derive: func(s Spec) (any, bool) { return s.Parallel.TP, true },
		get:    func(s Spec) any { return s.Parallel.MinWorkers },
		clear:  func(s *Spec) { s.Parallel.MinWorkers = 0 },
	},
}

// Derived names the fields of s whose values are their derivation (and so
// follow their sources under Override), mapped to the rule, e.g.
// "model.n_hidden" → "4·n_embd".
func (s Spec) Derived() map[string]string {
	out := map[string]string{}
	for _, d := range derivedFields {
		if v, ok := d.derive(s); ok && d.get(s) == v {
			out[d.key] = d.rule
		}
	}
	return out
}

// clearDerived zeroes every field of s that holds its derivation, so that
// WithDefaults derives it again from the (possibly overridden) source.
func clearDerived(s Spec) Spec {
	for _, d := range derivedFields {
		if v, ok := d.derive(s); ok && d.get(s) == v {
			d.clear(&s)
		}
	}
	return s
}

// MarshalAnnotated is Marshal with a YAML comment after each derived value
// ("n_hidden": 512,  # derived: 4·n_embd). JSON is YAML, so the result still
// parses (Parse, ParseFile) to the same spec; strict JSON readers want Marshal.
func (s Spec) MarshalAnnotated() []byte {
	derived := s.Derived()
	var out bytes.Buffer
	section := ""
	for _, line := range strings.Split(string(s.Marshal()), "\n") {
		trimmed := strings.TrimSpace(line)
		key, _, _ := strings.Cut(strings.TrimPrefix(trimmed, `"`), `"`)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		switch {
		case indent == 2 && strings.HasSuffix(trimmed, "{"):
			section = key
		case indent == 2:
			section = ""
		}
		out.WriteString(line)
		if rule, ok := derived[section+"."+key]; ok && indent == 4 {
			fmt.Fprintf(&out, "  # derived: %s", rule)
		}
		out.WriteByte('\n')
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}
