package main

import (
	"bytes"
	"testing"
)

func TestPrintRemoved(t *testing.T) {
	for _, tc := range []struct {
		json bool
		want string
	}{
		{false, "removed c3\n"},
		{true, `{"removed":"c3"}` + "\n"},
	} {
		var out bytes.Buffer
		cf := &clusterFlags{json: tc.json, out: &out}
		if err := cf.printRemoved("c3"); err != nil || out.String() != tc.want {
			t.Errorf("json %v: %q, %v; want %q", tc.json, out.String(), err, tc.want)
		}
	}
}
