package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// PieceBytes is the payload size of one piece on the wire (a multiple of 4).
const PieceBytes = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// meta describes a shard on the wire: everything ckpt.Shard holds except
// the payload, and the payload's length and SHA-256.
type meta struct {
	Job        string            `json:"job"`
	Step       int               `json:"step"`
	Generation uint64            `json:"generation"`
	TP         int               `json:"tp"`
	TPSize     int               `json:"tp_size"`
	ModelHash  string            `json:"model_hash,omitempty"`
	Spec       []byte            `json:"spec,omitempty"`
	Iter       int               `json:"iter"`
	Meta       map[string]string `json:"meta,omitempty"`
	Manifest   []ckpt.Tensor     `json:"manifest"`
	OptimLo    int               `json:"optim_lo"`
	OptimHi    int               `json:"optim_hi"`
	OptimSteps int               `json:"optim_steps"`
	Lens       [3]int            `json:"lens"` // values of data, m, v
	SHA256     []byte            `json:"sha256"`
}

func (m *meta) payloadBytes() int { return 4 * (m.Lens[0] + m.Lens[1] + m.Lens[2]) }

func numPieces(bytes int) int { return (bytes + PieceBytes - 1) / PieceBytes }

// Server serves PeerCheckpoints from a worker's store.
type Server struct {
	pb.UnimplementedPeerCheckpointsServer
	Store *ckpt.Store
	// Offer is called for every OfferShard; its error goes back to the
	// caller (nil: the offer is taken). It must not block on the fetch.
	Offer func(ctx context.Context, req *pb.OfferShardRequest) error
}

// FetchShard streams a stored shard from piece from_piece on. A shard that
// is absent answers NotFound; one that fails its checksums, DataLoss (the
// caller asks another holder).
func (s *Server) FetchShard(req *pb.FetchShardRequest, stream pb.PeerCheckpoints_FetchShardServer) error {
	sh, err := s.Store.Get(req.Job, int(req.Step), int(req.Tp))
	switch {
	case errors.Is(err, ckpt.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case err != nil:
		return status.Error(codes.DataLoss, err.Error())
	}
	info, err := s.Store.Stat(req.Job, int(req.Step), int(req.Tp))
	if err != nil {
		return status.Error(codes.DataLoss, err.Error())
	}
	m := meta{
		Job: sh.Job, Step: sh.Step, Generation: sh.Generation, TP: sh.TP, TPSize: sh.TPSize,
		ModelHash: sh.ModelHash, Spec: sh.Spec, Iter: sh.Iter, Meta: sh.Meta, Manifest: sh.Manifest,
		OptimLo: sh.Optim.Lo, OptimHi: sh.Optim.Hi, OptimSteps: sh.Optim.Steps,
		Lens: [3]int{len(sh.Data), len(sh.Optim.M), len(sh.Optim.V)}, SHA256: info.SHA256,
	}
	mb, err := json.Marshal(&m)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	total := m.payloadBytes()
	n := numPieces(total)
	floats := [3][]float32{sh.Data, sh.Optim.M, sh.Optim.V}
	buf := make([]byte, PieceBytes)
	for i := int(req.FromPiece); i < n; i++ {
		lo, hi := i*PieceBytes, min((i+1)*PieceBytes, total)
		b := buf[:hi-lo]
		encodeRange(b, floats, lo)
		p := &pb.ShardPiece{Index: uint32(i), Pieces: uint32(n), Payload: b, Crc32C: crc32.Checksum(b, castagnoli)}
		if i == int(req.FromPiece) {
			p.Meta = mb
		}
		if err := stream.Send(p); err != nil {
			return err
		}
	}
	if int(req.FromPiece) >= n { // nothing left to send: still describe the shard
		return stream.Send(&pb.ShardPiece{Meta: mb, Index: uint32(n), Pieces: uint32(n)})
	}
	return nil
}

// OfferShard hands an offer to the worker.
func (s *Server) OfferShard(ctx context.Context, req *pb.OfferShardRequest) (*pb.OfferShardResponse, error) {
	if s.Offer == nil {
		return nil, status.Error(codes.Unimplemented, "this worker takes no shard offers")
	}
	if err := s.Offer(ctx, req); err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &pb.OfferShardResponse{}, nil
}

// encodeRange writes payload bytes [off, off+len(b)) of the concatenated
// float streams into b.
func encodeRange(b []byte, floats [3][]float32, off int) {
	for _, x := range floats {
		n := 4 * len(x)
		if off >= n {
			off -= n
			continue
		}
		for ; off < n && len(b) > 0; off += 4 {
			binary.LittleEndian.PutUint32(b, math.Float32bits(x[off/4]))
			b = b[4:]
		}
		off = 0
		if len(b) == 0 {
			return
		}
	}
}

// Holder is a worker that holds the wanted shard.
type Holder struct {
	ID      string // worker id
	Address string // its peer gRPC address
}

// Dialer opens a PeerCheckpoints client to a holder (with TLS, expecting its
// certificate's name); close releases it.
type Dialer func(ctx context.Context, h Holder) (client pb.PeerCheckpointsClient, close func(), err error)

// GRPCDialer is the Dialer of workers and ringctl: a gRPC connection to the
// holder's peer address with creds(holder id) (nil, or a nil result:
// plaintext), closed with the client. A first piece carries the shard's
// description (a BPE tokenizer among it), hence the large receive limit.
func GRPCDialer(creds func(workerID string) grpc.DialOption) Dialer {
	return func(_ context.Context, h Holder) (pb.PeerCheckpointsClient, func(), error) {
		opt := grpc.WithTransportCredentials(insecure.NewCredentials())
		if creds != nil {
			if o := creds(h.ID); o != nil {
				opt = o
			}
		}
		cc, err := grpc.NewClient(h.Address, opt, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		if err != nil {
			return nil, nil, err
		}
		return pb.NewPeerCheckpointsClient(cc), func() { _ = cc.Close() }, nil
	}
}

// Request names the shard to fetch.
type Request struct {
	Job  string
	Step int
	TP   int
	// SHA256 the copy must have (the commit record's); nil accepts the
	// first holder's word.
	SHA256 []byte
}

// Stats describes a finished fetch.
type Stats struct {
	Bytes    int64         // payload bytes received, retransmissions included
	Duration time.Duration // from the first dial to the checked copy
	From     []string      // holders that sent pieces, in order
	Failures []string      // what went wrong with the holders dropped
}

// Fetch gets the shard of req from holders (in the order given), checking
// every piece and the whole copy, switching holders on any failure and
// resuming where the previous one stopped. It fails only when no holder
// can complete a correct copy, naming what each one did.
func Fetch(ctx context.Context, req Request, holders []Holder, dial Dialer) (*ckpt.Shard, Stats, error) {
	start := time.Now()
	var st Stats
	var (
		m    *meta
		buf  []byte
		next int // first piece not yet received
	)
	untried := slices.Clone(holders)
	for len(untried) > 0 {
		h := untried[0]
		untried = untried[1:]
		got, err := fetchFrom(ctx, req, h, dial, &m, &buf, &next, &st.Bytes)
		if got > 0 {
			st.From = append(st.From, h.ID)
		}
		if ctx.Err() != nil {
			return nil, st, fmt.Errorf("fetch job %s step %d tp %d: %w", req.Job, req.Step, req.TP, ctx.Err())
		}
		if err != nil {
			st.Failures = append(st.Failures, fmt.Sprintf("%s (%s): %v", h.ID, h.Address, err))
			continue
		}
		sum := sha256.Sum256(buf)
		if !slices.Equal(sum[:], m.SHA256) || (req.SHA256 != nil && !slices.Equal(sum[:], req.SHA256)) {
			st.Failures = append(st.Failures, fmt.Sprintf("%s (%s): copy has sha256 %x, holder says %x, commit record %x", h.ID, h.Address, sum, m.SHA256, req.SHA256))
			m, buf, next = nil, nil, 0 // which holder sent the bad bytes is unknown: start over
			continue
		}
		st.Duration = time.Since(start)
		return m.shard(buf), st, nil
	}
	return nil, st, fmt.Errorf("fetch job %s step %d tp %d: no holder gave a correct copy (%d asked): %v",
		req.Job, req.Step, req.TP, len(holders), st.Failures)
}

// fetchFrom streams pieces next… from one holder into *buf, returning how
// many it got. The first stream fixes the shard's description (*m); a later
// holder must describe the same payload.
func fetchFrom(ctx context.Context, req Request, h Holder, dial Dialer, m **meta, buf *[]byte, next *int, bytes *int64) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, closeConn, err := dial(ctx, h)
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer closeConn()
	stream, err := c.FetchShard(ctx, &pb.FetchShardRequest{Job: req.Job, Step: int64(req.Step), Tp: int32(req.TP), FromPiece: uint32(*next)})
	if err != nil {
		return 0, err
	}
	got := 0
	for {
		p, err := stream.Recv()
		if err == io.EOF {
			if *m == nil || *next < numPieces((*m).payloadBytes()) {
				return got, fmt.Errorf("stream ended at piece %d", *next)
			}
			return got, nil
		}
		if err != nil {
			return got, err
		}
		if p.Meta != nil {
			var pm meta
			if err := json.Unmarshal(p.Meta, &pm); err != nil {
				return got, fmt.Errorf("shard description: %w", err)
			}
			if err := pm.check(req); err != nil {
				return got, err
			}
			switch {
			case *m == nil:
				*m, *buf = &pm, make([]byte, pm.payloadBytes())
			case !slices.Equal(pm.SHA256, (*m).SHA256) || pm.Lens != (*m).Lens:
				return got, fmt.Errorf("holds a different shard (sha256 %x, want %x)", pm.SHA256, (*m).SHA256)
			}
		}
		if *m == nil {
			return got, errors.New("first piece carries no shard description")
		}
		n := numPieces((*m).payloadBytes())
		if p.Index == uint32(n) && len(p.Payload) == 0 && *next == n {
			continue // the empty tail a holder sends when nothing was left
		}
		lo := int(p.Index) * PieceBytes
		hi := min(lo+PieceBytes, len(*buf))
		switch {
		case int(p.Index) != *next:
			return got, fmt.Errorf("sent piece %d, want %d", p.Index, *next)
		case len(p.Payload) != hi-lo:
			return got, fmt.Errorf("piece %d has %d bytes, want %d", p.Index, len(p.Payload), hi-lo)
		case crc32.Checksum(p.Payload, castagnoli) != p.Crc32C:
			return got, fmt.Errorf("piece %d fails its crc32c", p.Index)
		}
		copy((*buf)[lo:hi], p.Payload)
		*bytes += int64(len(p.Payload))
		*next++
		got++
	}
}

// check refuses a description that is not the shard asked for or whose
// sizes cannot be right.
func (m *meta) check(req Request) error {
	if m.Job != req.Job || m.Step != req.Step || m.TP != req.TP {
		return fmt.Errorf("sent job %s step %d tp %d", m.Job, m.Step, m.TP)
	}
	for _, n := range m.Lens {
		if n < 0 || n > math.MaxInt32 {
			return fmt.Errorf("shard description has %d values in a section", n)
		}
	}
	return nil
}

// shard decodes a checked payload into a ckpt.Shard.
func (m *meta) shard(b []byte) *ckpt.Shard {
	var x [3][]float32
	for i, n := range m.Lens {
		x[i] = make([]float32, n)
		for j := range x[i] {
			x[i][j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
		}
		b = b[4*n:]
	}
	return &ckpt.Shard{
		Job: m.Job, Step: m.Step, Generation: m.Generation, TP: m.TP, TPSize: m.TPSize,
		ModelHash: m.ModelHash, Spec: m.Spec, Manifest: m.Manifest, Data: x[0],
		Optim: ckpt.Optim{Lo: m.OptimLo, Hi: m.OptimHi, M: x[1], V: x[2], Steps: m.OptimSteps},
		Iter:  m.Iter, Meta: m.Meta,
	}
}
