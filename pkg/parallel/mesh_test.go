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

// TestSplitUneven pins the one split's layout on uneven sizes: the first
// n mod parts ranges take one extra item (batch 7 over DP 3 is [0,3) [3,5)
// [5,7), the rank table of the coordinator's script test uneven_batch.txt).
func TestSplitUneven(t *testing.T) {
	for _, c := range []struct {
		n, parts int
		want     [][2]int
	}{
		{7, 3, [][2]int{{0, 3}, {3, 5}, {5, 7}}},
		{10, 4, [][2]int{{0, 3}, {3, 6}, {6, 8}, {8, 10}}},
		{2, 3, [][2]int{{0, 1}, {1, 2}, {2, 2}}},
		{6, 3, [][2]int{{0, 2}, {2, 4}, {4, 6}}},
	} {
		for i, w := range c.want {
			if lo, hi := Split(c.n, c.parts, i); lo != w[0] || hi != w[1] {
				t.Errorf("Split(%d, %d, %d) = [%d,%d), want [%d,%d)", c.n, c.parts, i, lo, hi, w[0], w[1])
			}
		}
		m := Mesh{DP: c.parts, TP: 2}
		for d, w := range c.want {
			if lo, hi := m.Rows(d, c.n); lo != w[0] || hi != w[1] {
				t.Errorf("Mesh%+v.Rows(%d, %d) = [%d,%d), want [%d,%d)", m, d, c.n, lo, hi, w[0], w[1])
			}
		}
	}
}
