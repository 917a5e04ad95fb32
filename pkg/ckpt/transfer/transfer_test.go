package transfer

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// testShard is a shard of n parameters whose payload spans several pieces.
func testShard(n int, seed float32) *ckpt.Shard {
	data, m, v := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range data {
		data[i], m[i], v[i] = seed+float32(i)*1e-3, float32(i%7)*0.5, float32(i%11)
	}
	return &ckpt.Shard{
		Job: "job-1", Step: 40, Generation: 3, TP: 1, TPSize: 2,
		Manifest: []ckpt.Tensor{{Name: "w", Shape: []int{n}}},
		Data:     data, Optim: ckpt.Optim{Lo: 0, Hi: n, M: m, V: v, Steps: 40}, Iter: 40,
	}
}

// holder is one worker serving its store, optionally through a wrapper
// that misbehaves.
type holder struct {
	Holder
	store *ckpt.Store
}

func serve(t *testing.T, name string, sh *ckpt.Shard, wrap func(pb.PeerCheckpointsServer) pb.PeerCheckpointsServer) holder {
	t.Helper()
	st, err := ckpt.Open(filepath.Join(t.TempDir(), "c.db"), ckpt.Options{ChunkBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if sh != nil {
		if err := st.Put(sh); err != nil {
			t.Fatal(err)
		}
	}
	var srv pb.PeerCheckpointsServer = &Server{Store: st}
	if wrap != nil {
		srv = wrap(srv)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterPeerCheckpointsServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return holder{Holder{ID: name, Address: lis.Addr().String()}, st}
}

var dial = GRPCDialer(nil)

// breaking sends `after` pieces and then fails the stream, as a holder
// that dies mid-transfer does; corrupt flips a byte of piece `after`
// instead (after the CRC was computed).
type breaking struct {
	pb.PeerCheckpointsServer
	after   int
	corrupt bool
}

type cutStream struct {
	pb.PeerCheckpoints_FetchShardServer
	b    *breaking
	sent int
}

func (s *cutStream) Send(p *pb.ShardPiece) error {
	if s.sent == s.b.after {
		if !s.b.corrupt {
			return errors.New("holder died")
		}
		p.Payload[len(p.Payload)/2] ^= 0x40
	}
	s.sent++
	return s.PeerCheckpoints_FetchShardServer.Send(p)
}

func (b *breaking) FetchShard(req *pb.FetchShardRequest, stream pb.PeerCheckpoints_FetchShardServer) error {
	return b.PeerCheckpointsServer.FetchShard(req, &cutStream{PeerCheckpoints_FetchShardServer: stream, b: b})
}

func sum(t *testing.T, st *ckpt.Store) []byte {
	t.Helper()
	info, err := st.Stat("job-1", 40, 1)
	if err != nil {
		t.Fatal(err)
	}
	return info.SHA256
}

func equalShard(t *testing.T, got, want *ckpt.Shard) {
	t.Helper()
	for i, pair := range [][2][]float32{{got.Data, want.Data}, {got.Optim.M, want.Optim.M}, {got.Optim.V, want.Optim.V}} {
		if len(pair[0]) != len(pair[1]) {
			t.Fatalf("section %d: %d values, want %d", i, len(pair[0]), len(pair[1]))
		}
		for j := range pair[0] {
			if pair[0][j] != pair[1][j] {
				t.Fatalf("section %d value %d: %v, want %v", i, j, pair[0][j], pair[1][j])
			}
		}
	}
	if got.Job != want.Job || got.Step != want.Step || got.TP != want.TP || got.TPSize != want.TPSize || got.Optim.Steps != want.Optim.Steps || got.Iter != want.Iter {
		t.Fatalf("metadata %+v, want %+v", got.Info(), want.Info())
	}
}

const n = 700_000 // 3 × 2.8 MB: 9 pieces

func TestFetchWholeShard(t *testing.T) {
	sh := testShard(n, 1)
	a := serve(t, "a", sh, nil)
	got, st, err := Fetch(context.Background(), Request{Job: "job-1", Step: 40, TP: 1, SHA256: sum(t, a.store)}, []Holder{a.Holder}, dial)
	if err != nil {
		t.Fatal(err)
	}
	equalShard(t, got, sh)
	if st.Bytes != 12*n || len(st.From) != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A holder that dies after three pieces: the next holder goes on from
// piece 3, and the copy is whole and correct.
func TestFetchResumesOnAnotherHolder(t *testing.T) {
	sh := testShard(n, 1)
	a := serve(t, "a", sh, func(s pb.PeerCheckpointsServer) pb.PeerCheckpointsServer {
		return &breaking{PeerCheckpointsServer: s, after: 3}
	})
	b := serve(t, "b", sh, nil)
	got, st, err := Fetch(context.Background(), Request{Job: "job-1", Step: 40, TP: 1, SHA256: sum(t, b.store)}, []Holder{a.Holder, b.Holder}, dial)
	if err != nil {
		t.Fatal(err)
	}
	equalShard(t, got, sh)
	if st.Bytes != 12*n {
		t.Fatalf("received %d bytes, want %d: the second holder resent pieces", st.Bytes, 12*n)
	}
	if len(st.From) != 2 || len(st.Failures) != 1 || !strings.Contains(st.Failures[0], "holder died") {
		t.Fatalf("stats %+v", st)
	}
}

// A piece damaged in transit fails its CRC; the rest comes from another holder.
func TestFetchRejectsDamagedPiece(t *testing.T) {
	sh := testShard(n, 1)
	a := serve(t, "a", sh, func(s pb.PeerCheckpointsServer) pb.PeerCheckpointsServer {
		return &breaking{PeerCheckpointsServer: s, after: 5, corrupt: true}
	})
	b := serve(t, "b", sh, nil)
	got, st, err := Fetch(context.Background(), Request{Job: "job-1", Step: 40, TP: 1}, []Holder{a.Holder, b.Holder}, dial)
	if err != nil {
		t.Fatal(err)
	}
	equalShard(t, got, sh)
	if len(st.Failures) != 1 || !strings.Contains(st.Failures[0], "piece 5 fails its crc32c") {
		t.Fatalf("failures %q", st.Failures)
	}
}

// A holder without the shard, one whose copy differs from the commit
// record, and none left: the error names each.
func TestFetchFailsNamingEveryHolder(t *testing.T) {
	sh := testShard(n, 1)
	empty := serve(t, "empty", nil, nil)
	other := serve(t, "other", testShard(n, 2), nil)
	good := serve(t, "good", sh, nil)
	want := sum(t, good.store)

	_, _, err := Fetch(context.Background(), Request{Job: "job-1", Step: 40, TP: 1, SHA256: want}, []Holder{empty.Holder, other.Holder}, dial)
	if err == nil {
		t.Fatal("fetch succeeded with no correct holder")
	}
	for _, s := range []string{"empty", "NotFound", "other", "commit record"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	// With a good holder after them, the copy is the committed one.
	got, _, err := Fetch(context.Background(), Request{Job: "job-1", Step: 40, TP: 1, SHA256: want}, []Holder{empty.Holder, other.Holder, good.Holder}, dial)
	if err != nil {
		t.Fatal(err)
	}
	equalShard(t, got, sh)
}

// A holder whose stored shard is corrupt (a flipped bit on its disk)
// refuses to serve it (DataLoss); the copy comes from the next holder.
func TestFetchSkipsCorruptHolder(t *testing.T) {
	sh := testShard(1000, 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "c.db")
	st, err := ckpt.Open(path, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(sh); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		cb := tx.Bucket([]byte("jobs")).Bucket([]byte("job-1")).Bucket([]byte{0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0, 1})
		v := append([]byte(nil), cb.Get([]byte("m/000000"))...)
		v[10] ^= 1
		return cb.Put([]byte("m/000000"), v)
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	st, err = ckpt.Open(path, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterPeerCheckpointsServer(gs, &Server{Store: st})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	bad := Holder{ID: "bad", Address: lis.Addr().String()}

	b := serve(t, "b", sh, nil)
	got, stats, err := Fetch(context.Background(), Request{Job: "job-1", Step: 40, TP: 1, SHA256: sum(t, b.store)}, []Holder{bad, b.Holder}, dial)
	if err != nil {
		t.Fatal(err)
	}
	equalShard(t, got, sh)
	if len(stats.Failures) != 1 || !strings.Contains(stats.Failures[0], "DataLoss") || !strings.Contains(stats.Failures[0], "crc32c") {
		t.Fatalf("failures %q", stats.Failures)
	}
}

// BenchmarkFetch measures a whole-shard fetch over loopback gRPC, store
// read included: 16 M values per section (192 MB of payload, about a TP
// shard of GPT-2 small with its AdamW moments). Reported as MB/s of payload.
func BenchmarkFetch(b *testing.B) {
	const values = 16 << 20
	sh := testShard(values, 1)
	dir := b.TempDir()
	st, err := ckpt.Open(filepath.Join(dir, "c.db"), ckpt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Put(sh); err != nil {
		b.Fatal(err)
	}
	info, err := st.Stat("job-1", 40, 1)
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterPeerCheckpointsServer(gs, &Server{Store: st})
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	h := Holder{ID: "a", Address: lis.Addr().String()}
	b.SetBytes(12 * values)
	b.ResetTimer()
	for range b.N {
		if _, _, err := Fetch(context.Background(), Request{Job: "job-1", Step: 40, TP: 1, SHA256: info.SHA256}, []Holder{h}, dial); err != nil {
			b.Fatal(err)
		}
	}
}
