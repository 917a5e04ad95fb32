package train

import (
	"slices"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel"
)

// TestRankTableIsTheWorkersMesh: the rank table the coordinator publishes
// (coord.Layout) for batch 7 over DP 3 × TP 2 is the one a worker derives
// from its mesh: same rows per DP group, groups from Mesh.DPGroup/TPGroup.
// A table with other rows (the old [0,2) [2,4) [4,7) drift) is refused.
func TestRankTableIsTheWorkersMesh(t *testing.T) {
	spec := jobspec.Default()
	spec.Parallel.TP = 2
	spec.Train.BatchSize = 7
	workers := []string{"w0", "w1", "w2", "w3", "w4", "w5"}
	gen := coord.Layout(spec, workers, func(id string) string { return id + ":1" })
	mesh := parallel.Mesh{DP: int(gen.DpSize), TP: int(gen.TpSize)}
	addrs, err := rankAddresses(gen, mesh)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[int][2]int{}
	for _, r := range gen.Ranks {
		rows[int(r.Dp)] = [2]int{int(r.BatchOffset), int(r.BatchOffset + r.BatchRows)}
	}
	for d, want := range [][2]int{{0, 3}, {3, 5}, {5, 7}} {
		lo, hi := mesh.Rows(d, 7)
		if rows[d] != want || lo != want[0] || hi != want[1] {
			t.Errorf("dp %d: table rows %v, mesh rows [%d,%d), want %v", d, rows[d], lo, hi, want)
		}
	}
	if got, want := peerAddresses(addrs, mesh.DPGroup(1)), []string{"w1:1", "w3:1", "w5:1"}; !slices.Equal(got, want) {
		t.Errorf("DP group of tp 1: %v, want %v", got, want)
	}
	if got, want := peerAddresses(addrs, mesh.TPGroup(2)), []string{"w4:1", "w5:1"}; !slices.Equal(got, want) {
		t.Errorf("TP group of dp 2: %v, want %v", got, want)
	}

	gen.Ranks[0].BatchRows, gen.Ranks[1].BatchRows = 2, 2
	if _, err := rankAddresses(gen, mesh); err == nil || !strings.Contains(err.Error(), "rows") {
		t.Errorf("table with drifted rows: err %v, want a rows mismatch", err)
	}
}
