package ckpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sync/errgroup"
)

var testTime = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// openStore opens a store in a fresh temporary file, closed at cleanup.
func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return testTime }
	}
	st, err := Open(filepath.Join(t.TempDir(), "ckpt.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// testShard builds a shard of n parameters in three tensors with moments
// over [lo,hi), filled from seed with values that include NaN payloads,
// signed zeros, infinities and subnormals.
func testShard(job string, step, tp, tpSize, n, lo, hi int, seed uint64) *Shard {
	rng := rand.New(rand.NewPCG(seed, uint64(step)<<8|uint64(tp)))
	fill := func(k int) []float32 {
		x := make([]float32, k)
		for i := range x {
			x[i] = math.Float32frombits(rng.Uint32())
		}
		special := []float32{float32(math.NaN()), math.Float32frombits(0x7fc00123), float32(math.Copysign(0, -1)),
			float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(1)}
		copy(x, special[:min(k, len(special))])
		return x
	}
	a, b := n/4, n/2
	return &Shard{
		Job: job, Step: step, Generation: 3, TP: tp, TPSize: tpSize,
		ModelHash: "sha256:abc", Spec: []byte(`{"model":{"arch":"gpt"}}`),
		Manifest: []Tensor{
			{Name: "wte.weight", Offset: 0, Shape: []int{a}},
			{Name: "h.0.attn.c_attn.weight", Offset: a, Shape: []int{b - a, 1}, Decay: true,
				Split: &Split{Full: []int{(b - a) * tpSize, 1}, Dim: 0, Parts: 1, Rank: tp, Size: tpSize}},
			{Name: "ln_f.bias", Offset: b, Shape: []int{n - b}},
		},
		Data:  fill(n),
		Optim: Optim{Lo: lo, Hi: hi, M: fill(hi - lo), V: fill(hi - lo), Steps: step + 1},
		Iter:  step,
		Meta:  map[string]string{"rng": fmt.Sprint(seed)},
	}
}

// sameBits reports whether a and b hold bit-identical values.
func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// checkShard fails t unless got equals want (bit-exact data) with Created set.
func checkShard(t testing.TB, got, want *Shard) {
	t.Helper()
	switch {
	case got.Job != want.Job || got.Step != want.Step || got.Generation != want.Generation || got.TP != want.TP ||
		got.TPSize != want.TPSize || got.ModelHash != want.ModelHash || !bytes.Equal(got.Spec, want.Spec) ||
		got.Iter != want.Iter || fmt.Sprint(got.Meta) != fmt.Sprint(want.Meta):
		t.Fatalf("metadata: got %+v, want %+v", got.Info(), want.Info())
	case !reflect.DeepEqual(got.Manifest, want.Manifest) || !reflect.DeepEqual(got.Views(), want.Views()):
		t.Fatalf("manifest: got %+v, want %+v", got.Manifest, want.Manifest)
	case !sameBits(got.Data, want.Data):
		t.Fatalf("data differs (len %d vs %d)", len(got.Data), len(want.Data))
	case got.Optim.Lo != want.Optim.Lo || got.Optim.Hi != want.Optim.Hi || got.Optim.Steps != want.Optim.Steps ||
		!sameBits(got.Optim.M, want.Optim.M) || !sameBits(got.Optim.V, want.Optim.V):
		t.Fatalf("optimizer state differs: [%d,%d) steps %d vs [%d,%d) steps %d",
			got.Optim.Lo, got.Optim.Hi, got.Optim.Steps, want.Optim.Lo, want.Optim.Hi, want.Optim.Steps)
	case !got.Created.Equal(testTime):
		t.Fatalf("created %v, want %v", got.Created, testTime)
	}
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name          string
		chunkBytes    int
		n, lo, hi, tp int
	}{
		{"one chunk", 0, 100, 0, 100, 0},
		{"chunk boundaries", 64, 1000, 0, 1000, 1},
		{"exact multiple of chunk", 40, 100, 0, 100, 0},
		{"moments of a sub-range", 36, 257, 13, 200, 1},
		{"no moments", 0, 10, 0, 0, 0},
		{"empty buffer", 0, 0, 0, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t, Options{ChunkBytes: c.chunkBytes})
			want := testShard("job-a", 7, c.tp, 2, c.n, c.lo, c.hi, 1)
			if c.n == 0 {
				want.Manifest = nil
			}
			if err := st.Put(want); err != nil {
				t.Fatal(err)
			}
			got, err := st.Get("job-a", 7, c.tp)
			if err != nil {
				t.Fatal(err)
			}
			checkShard(t, got, want)
			if err := st.Verify("job-a", 7, c.tp); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReopenKeepsShards(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.db")
	now := func() time.Time { return testTime }
	st, err := Open(path, Options{ChunkBytes: 64, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	want := testShard("j", 3, 0, 1, 500, 0, 500, 2)
	if err := st.Put(want); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Reading does not depend on the chunk size of the store that reads.
	st, err = Open(path, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.Get("j", 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkShard(t, got, want)
}

func TestPutReplaces(t *testing.T) {
	st := openStore(t, Options{ChunkBytes: 64})
	if err := st.Put(testShard("j", 5, 0, 1, 1000, 0, 1000, 1)); err != nil {
		t.Fatal(err)
	}
	// The replacement is shorter: no chunk of the old shard may survive.
	want := testShard("j", 5, 0, 1, 100, 0, 100, 2)
	want.Generation = 4
	if err := st.Put(want); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get("j", 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkShard(t, got, want)
	infos, err := st.List("j")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Generation != 4 || infos[0].Bytes != 4*300 {
		t.Fatalf("List after replace = %+v, want one shard of generation 4, 1200 bytes", infos)
	}
}

func TestPutRejectsInconsistentShard(t *testing.T) {
	cases := []struct {
		name   string
		modify func(s *Shard)
		want   string
	}{
		{"no job", func(s *Shard) { s.Job = "" }, "job id is empty"},
		{"negative step", func(s *Shard) { s.Step = -1 }, "negative"},
		{"tp out of range", func(s *Shard) { s.TP = 2 }, "tp rank 2 of 2"},
		{"tensor past the buffer", func(s *Shard) { s.Manifest[2].Shape = []int{1000} }, "outside"},
		{"overlapping tensors", func(s *Shard) { s.Manifest[1].Offset = 0 }, "overlaps"},
		{"duplicate name", func(s *Shard) { s.Manifest[2].Name = s.Manifest[0].Name }, "duplicate"},
		{"bad split", func(s *Shard) { s.Manifest[1].Split.Full = []int{7, 1} }, "wte"},
		{"short moments", func(s *Shard) { s.Optim.M = s.Optim.M[1:] }, "M has"},
		{"moments range", func(s *Shard) { s.Optim.Hi = 101 }, "outside"},
	}
	st := openStore(t, Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testShard("j", 1, 1, 2, 100, 0, 100, 1)
			c.modify(s)
			err := st.Put(s)
			if err == nil {
				t.Fatal("Put accepted an inconsistent shard")
			}
			if c.name == "bad split" { // the message names the split tensor
				c.want = "h.0.attn.c_attn.weight"
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestListLatestRetainDelete(t *testing.T) {
	st := openStore(t, Options{})
	for _, step := range []int{40, 10, 30, 20} {
		for tp := range 2 {
			if step == 40 && tp == 1 {
				continue // rank 1 has not written step 40 yet
			}
			if err := st.Put(testShard("j", step, tp, 2, 16, 0, 16, 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Put(testShard("other", 99, 0, 1, 16, 0, 16, 1)); err != nil {
		t.Fatal(err)
	}
	steps := func() []string {
		t.Helper()
		infos, err := st.List("j")
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, i := range infos {
			if i.Job != "j" || i.TPSize != 2 || i.Bytes != 3*16*4 || !i.Created.Equal(testTime) {
				t.Fatalf("info %+v", i)
			}
			s = append(s, fmt.Sprintf("%d/%d", i.Step, i.TP))
		}
		return s
	}
	if got, want := steps(), []string{"10/0", "10/1", "20/0", "20/1", "30/0", "30/1", "40/0"}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	for tp, want := range []int{40, 30} {
		info, err := st.Latest("j", tp)
		if err != nil || info.Step != want || info.TP != tp {
			t.Fatalf("Latest(tp %d) = %+v, %v; want step %d", tp, info, err, want)
		}
	}
	if _, err := st.Latest("j", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Latest of an absent rank: %v, want ErrNotFound", err)
	}
	if _, err := st.Latest("nope", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Latest of an absent job: %v, want ErrNotFound", err)
	}
	if infos, err := st.List("nope"); err != nil || len(infos) != 0 {
		t.Fatalf("List of an absent job = %v, %v", infos, err)
	}

	deleted, err := st.Retain("j", 2, 10)
	if err != nil || !slices.Equal(deleted, []int{20}) {
		t.Fatalf("Retain(keep 2, protect 10) deleted %v, %v; want [20]", deleted, err)
	}
	if got, want := steps(), []string{"10/0", "10/1", "30/0", "30/1", "40/0"}; !slices.Equal(got, want) {
		t.Fatalf("after Retain, List = %v, want %v", got, want)
	}
	if _, err := st.Get("j", 20, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a retired step: %v, want ErrNotFound", err)
	}

	if err := st.Delete("j", 30); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete("j", 31); err != nil {
		t.Fatalf("Delete of an absent step: %v", err)
	}
	if got, want := steps(), []string{"10/0", "10/1", "40/0"}; !slices.Equal(got, want) {
		t.Fatalf("after Delete, List = %v, want %v", got, want)
	}
	if deleted, err := st.Retain("j", 0); err != nil || !slices.Equal(deleted, []int{10, 40}) {
		t.Fatalf("Retain(keep 0) deleted %v, %v", deleted, err)
	}
	if _, err := st.Retain("j", -1); err == nil {
		t.Fatal("Retain accepted keep -1")
	}

	if jobs, err := st.Jobs(); err != nil || !slices.Equal(jobs, []string{"j", "other"}) {
		t.Fatalf("Jobs = %v, %v", jobs, err)
	}
	if err := st.DeleteJob("other"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteJob("other"); err != nil {
		t.Fatalf("DeleteJob of an absent job: %v", err)
	}
	if _, err := st.Get("other", 99, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after DeleteJob: %v, want ErrNotFound", err)
	}
}

// mutate edits a closed store's file through bbolt directly: fn gets the
// checkpoint bucket of job j step 7 tp 1.
func mutate(t *testing.T, path string, fn func(cb *bbolt.Bucket) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		return fn(tx.Bucket(bucketJobs).Bucket([]byte("j")).Bucket(ckptKey(7, 1)))
	}); err != nil {
		t.Fatal(err)
	}
}

// flipByte returns a copy of b with one bit of byte i flipped.
func flipByte(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x10
	return c
}

func TestCorruptionIsReported(t *testing.T) {
	// 1000 parameters in 64-byte (16-value) chunks: data/000020 holds
	// values [320,336), inside h.0.attn.c_attn.weight [250,500).
	cases := []struct {
		name   string
		edit   func(cb *bbolt.Bucket) error
		want   error
		naming string
	}{
		{"flipped byte in a data chunk", func(cb *bbolt.Bucket) error {
			k := chunkKey("data", 20)
			return cb.Put(k, flipByte(cb.Get(k), 5))
		}, ErrCorrupt, "chunk data/000020 (values [320,336), tensor h.0.attn.c_attn.weight)"},
		{"flipped byte in a moment chunk", func(cb *bbolt.Bucket) error {
			k := chunkKey("v", 0)
			return cb.Put(k, flipByte(cb.Get(k), 0))
		}, ErrCorrupt, "chunk v/000000 (values [0,16), tensor wte.weight)"},
		{"missing chunk", func(cb *bbolt.Bucket) error { return cb.Delete(chunkKey("m", 3)) }, ErrCorrupt, "chunk m/000003"},
		{"short chunk", func(cb *bbolt.Bucket) error {
			k := chunkKey("data", 62)
			return cb.Put(k, slices.Clone(cb.Get(k)[:4]))
		}, ErrCorrupt, "chunk data/000062 (values [992,1000), tensor ln_f.bias) holds 4 bytes, want 32"},
		{"chunks swapped", func(cb *bbolt.Bucket) error {
			a, b := slices.Clone(cb.Get(chunkKey("data", 1))), slices.Clone(cb.Get(chunkKey("data", 2)))
			if err := cb.Put(chunkKey("data", 1), b); err != nil {
				return err
			}
			return cb.Put(chunkKey("data", 2), a)
		}, ErrCorrupt, "chunk data/000001"},
		{"flipped byte in the header", func(cb *bbolt.Bucket) error {
			return cb.Put(keyHeader, flipByte(cb.Get(keyHeader), 40))
		}, ErrCorrupt, "header checksum"},
		{"header missing", func(cb *bbolt.Bucket) error { return cb.Delete(keyHeader) }, ErrCorrupt, "header missing"},
		{"newer format", func(cb *bbolt.Bucket) error {
			h := slices.Clone(cb.Get(keyHeader))
			binary.LittleEndian.PutUint32(h[4:], FormatVersion+1)
			binary.LittleEndian.PutUint32(h[len(h)-4:], crc32.Checksum(h[:len(h)-4], castagnoli))
			return cb.Put(keyHeader, h)
		}, ErrUnsupportedVersion, "format version 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ckpt.db")
			st, err := Open(path, Options{ChunkBytes: 64})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Put(testShard("j", 7, 1, 2, 1000, 0, 1000, 1)); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			mutate(t, path, c.edit)
			st, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			_, getErr := st.Get("j", 7, 1)
			for _, err := range []error{getErr, st.Verify("j", 7, 1)} {
				if !errors.Is(err, c.want) {
					t.Fatalf("error %v, want %v", err, c.want)
				}
				if msg := err.Error(); !strings.Contains(msg, `job "j" step 7 tp 1`) || !strings.Contains(msg, c.naming) {
					t.Fatalf("error %q does not name the checkpoint and %q", msg, c.naming)
				}
			}
		})
	}
}

func TestFlippedBitOnDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.db")
	st, err := Open(path, Options{ChunkBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	s := testShard("j", 7, 1, 2, 4096, 0, 4096, 1)
	if err := st.Put(s); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Find chunk data/000002 (values [512,768)) in the raw file and flip
	// one bit in the middle of it, as a failing disk would.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	payload := encodeFloats(s.Data[512:768])
	at := bytes.Index(raw, payload)
	if at < 0 || bytes.Contains(raw[at+1:], payload) {
		t.Fatalf("chunk payload found at %d; want exactly one copy in the file", at)
	}
	raw[at+500] ^= 0x01
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, err := range map[string]error{"Verify": st.Verify("j", 7, 1), "Get": func() error { _, err := st.Get("j", 7, 1); return err }()} {
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk data/000002 (values [512,768)") {
			t.Fatalf("%s: %v, want ErrCorrupt naming chunk data/000002", name, err)
		}
	}
}

func TestDamagedFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	st, err := Open(good, Options{ChunkBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for step := range 3 {
		if err := st.Put(testShard("j", step, 0, 1, 20000, 0, 20000, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(i*7 + i>>8)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"garbage", garbage},
		{"truncated to half", raw[:len(raw)/2]},
		{"truncated to one page", raw[:4096]},
		{"truncated mid meta", raw[:100]},
		{"meta pages zeroed", append(make([]byte, 8192), raw[8192:]...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".db")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Open(path, Options{LockTimeout: time.Second})
			if err != nil {
				t.Logf("Open: %v", err)
				return // refused at Open: fine
			}
			defer st.Close()
			for step := range 3 {
				_, err := st.Get("j", step, 0)
				if err == nil {
					t.Fatalf("Get step %d of a damaged file succeeded", step)
				}
				t.Logf("Get step %d: %v", step, err)
			}
		})
	}
}

func TestLargeShardCrossesChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("writes ~20 MB")
	}
	st := openStore(t, Options{}) // default 4 MiB chunks: 1 Mi values each
	const n = 3_000_000
	want := testShard("big", 1, 0, 1, n, 1_000_000, 1_500_000, 9)
	if err := st.Put(want); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get("big", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkShard(t, got, want)
	err = st.view(func(tx *bbolt.Tx) error {
		cb := tx.Bucket(bucketJobs).Bucket([]byte("big")).Bucket(ckptKey(1, 0))
		var keys []string
		if err := cb.ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil }); err != nil {
			return err
		}
		if want := []string{"data/000000", "data/000001", "data/000002", "header", "m/000000", "v/000000"}; !slices.Equal(keys, want) {
			return fmt.Errorf("stored keys %v, want %v", keys, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentGetWhilePut(t *testing.T) {
	st := openStore(t, Options{ChunkBytes: 256})
	// Two versions of one checkpoint: every value of version k is k, and
	// the versions differ in length. A reader must see one whole version.
	version := func(k int) *Shard {
		s := testShard("j", 1, 0, 1, 2000+1000*k, 0, 2000+1000*k, 1)
		for _, x := range [][]float32{s.Data, s.Optim.M, s.Optim.V} {
			for i := range x {
				x[i] = float32(k)
			}
		}
		s.Generation = uint64(k)
		return s
	}
	if err := st.Put(version(0)); err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	g.Go(func() error {
		for i := range 20 {
			if err := st.Put(version((i + 1) % 2)); err != nil {
				return err
			}
		}
		return nil
	})
	for range 2 {
		g.Go(func() error {
			for range 20 {
				s, err := st.Get("j", 1, 0)
				if err != nil {
					return err
				}
				k := float32(s.Generation)
				if len(s.Data) != 2000+1000*int(k) {
					return fmt.Errorf("generation %v with %d values", k, len(s.Data))
				}
				for _, x := range [][]float32{s.Data, s.Optim.M, s.Optim.V} {
					if i := slices.IndexFunc(x, func(v float32) bool { return v != k }); i >= 0 {
						return fmt.Errorf("generation %v holds %v at %d: a mix of two versions", k, x[i], i)
					}
				}
				if err := st.Verify("j", 1, 0); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}
