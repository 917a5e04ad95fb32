package jobspec

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// unknownField returns an error naming the first field of doc (a decoded
// YAML/JSON tree) that t does not have, by its full dotted path and with the
// closest known name at that level when one is near: "model.n_embdd:
// unknown field, did you mean model.n_embd?". nil when every field is known.
func unknownField(doc any, t reflect.Type, prefix string) error {
	m, ok := doc.(map[string]any)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if !ok || t.Kind() != reflect.Struct {
		return nil // a wrong type: the decoder names it
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ft, known := fields[k]
		if !known {
			// encoding/json matches names case-insensitively; so does this.
			for name, typ := range fields {
				if strings.EqualFold(name, k) {
					ft, known = typ, true
				}
			}
		}
		if !known {
			msg := fmt.Sprintf("%s%s: unknown field", prefix, k)
			if s := closest(k, fields); s != "" {
				msg += fmt.Sprintf(", did you mean %s%s?", prefix, s)
			} else {
				msg += "; check its spelling against `ringctl train --print-spec`"
			}
			return fmt.Errorf("job spec: %s", msg)
		}
		if err := unknownField(m[k], ft, prefix+k+"."); err != nil {
			return err
		}
	}
	return nil
}

// closest is the known name nearest to k by edit distance, "" when none is
// within a third of its length (at least 2 edits allowed).
func closest(k string, fields map[string]reflect.Type) string {
	best, bestD := "", max(2, len(k)/3)+1
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if d := editDistance(strings.ToLower(k), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
