package parallel

import "testing"

func TestMeshCoordinatesAndGroups(t *testing.T) {
	for _, c := range []struct{ dp, tp int }{{1, 1}, {2, 1}, {1, 2}, {2, 2}, {3, 4}} {
		m, err := NewMesh(c.dp, c.tp)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for r := 0; r < m.World(); r++ {
			d, tp := m.Coords(r)
			if m.Rank(d, tp) != r {
				t.Fatalf("%+v: rank %d → (%d,%d) → %d", m, r, d, tp, m.Rank(d, tp))
			}
			// r is in exactly its own TP group and its own DP group.
			if g := m.TPGroup(d); g[tp] != r {
				t.Errorf("%+v: TP group %v of rank %d", m, g, r)
			}
			if g := m.DPGroup(tp); g[d] != r {
				t.Errorf("%+v: DP group %v of rank %d", m, g, r)
			}
			seen[r] = true
		}
		if len(seen) != c.dp*c.tp {
			t.Errorf("%+v: %d distinct ranks", m, len(seen))
		}
	}
	if _, err := NewMesh(0, 2); err == nil {
		t.Error("NewMesh(0, 2) accepted")
	}
}

func TestRowsCoverTheBatchOnce(t *testing.T) {
	for _, dp := range []int{1, 2, 3, 5} {
		m := Mesh{DP: dp, TP: 1}
		for _, n := range []int{1, 7, 12, 64} {
			if n < dp {
				continue
			}
			next := 0
			for d := 0; d < dp; d++ {
				lo, hi := m.Rows(d, n)
				if lo != next || hi < lo {
					t.Fatalf("dp=%d n=%d: rank %d rows [%d,%d), want start %d", dp, n, d, lo, hi, next)
				}
				if hi-lo < n/dp || hi-lo > n/dp+1 {
					t.Errorf("dp=%d n=%d: rank %d gets %d rows, uneven", dp, n, d, hi-lo)
				}
				next = hi
			}
			if next != n {
				t.Fatalf("dp=%d n=%d: rows end at %d", dp, n, next)
			}
		}
	}
}
