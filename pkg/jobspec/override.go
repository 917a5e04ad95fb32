package jobspec

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Override applies flat key=value settings (nanoGPT's configurator style),
// e.g. "train.max_iters=100" or "model.n_layer=2", to s and re-validates the
// result. Keys are dotted spec field names; values are YAML scalars. Unknown
// keys and wrong types are rejected exactly as in Parse.
func Override(s Spec, settings []string) (Spec, error) {
	if len(settings) == 0 {
		return s, nil
	}
	// Fields derived from other fields follow them (-set model.n_embd=384
	// moves n_hidden to 1536) unless set explicitly, here or before.
	s = clearDerived(s)
	var doc map[string]any
	if err := json.Unmarshal(s.Marshal(), &doc); err != nil {
		return Spec{}, fmt.Errorf("override: %w", err)
	}
	for _, kv := range settings {
		key, raw, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return Spec{}, fmt.Errorf("override %q: want key=value, e.g. train.max_iters=100", kv)
		}
		path := strings.Split(key, ".")
		var val any = raw // string fields take the text as it is (a digest may look like a number)
		if fieldKind(path) != reflect.String {
			if err := yaml.Unmarshal([]byte(raw), &val); err != nil {
				return Spec{}, fmt.Errorf("override %s: value %q: %w", key, raw, err)
			}
		}
		m := doc
		for _, part := range path[:len(path)-1] {
			next, ok := m[part].(map[string]any)
			if !ok {
				if _, exists := m[part]; exists {
					return Spec{}, fmt.Errorf("override %s: %s is not a section", key, part)
				}
				next = map[string]any{}
				m[part] = next
			}
			m = next
		}
		m[path[len(path)-1]] = val
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return Spec{}, fmt.Errorf("override: %w", err)
	}
	return Parse(b)
}

// fieldKind is the kind of the Spec field a dotted JSON path names
// (reflect.Invalid when there is no such field; Parse then reports it).
func fieldKind(path []string) reflect.Kind {
	t := reflect.TypeFor[Spec]()
	for _, part := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return reflect.Invalid
		}
		found := false
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == part {
				t, found = f.Type, true
				break
			}
		}
		if !found {
			return reflect.Invalid
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind()
}
