package allreduce

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// FuzzBulkHandshake feeds arbitrary bytes to a bulk listener's handshake,
// as anything that reaches the port could. The server holds one group
// (job "j", generation 5, rank 0 of 3). Nothing panics; a connection is
// accepted (answered bulkOK) only for a well-formed hello naming a link
// into that group (from rank 1 or 2 to rank 0, world size 3); every hello
// that decodes gets exactly one answer byte; garbage gets none.
func FuzzBulkHandshake(f *testing.F) {
	hello := func(h *pb.PeerHello) []byte {
		b, err := proto.Marshal(h)
		if err != nil {
			f.Fatal(err)
		}
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
	}
	f.Add(hello(&pb.PeerHello{Job: "j", Generation: 5, From: 1, To: 0, WorldSize: 3}))
	f.Add(hello(&pb.PeerHello{Job: "j", Generation: 5, From: 7, To: 0, WorldSize: 3}))
	f.Add(hello(&pb.PeerHello{Job: "j", Generation: 5, From: 0, To: 0, WorldSize: 3}))
	f.Add(hello(&pb.PeerHello{Job: "j", Generation: 4, From: 1, To: 0, WorldSize: 3}))
	f.Add(hello(&pb.PeerHello{Job: "other", Generation: 5, From: 1, To: 0, WorldSize: 3}))
	f.Add(hello(&pb.PeerHello{Job: "j", Generation: 5, From: 2, To: 1, WorldSize: 2}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 9, 0x0a})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := NewServer(ServerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Join(GroupConfig{Job: "j", Generation: 5, Rank: 0, Peers: []string{"a:1", "a:2", "a:3"}}); err != nil {
			t.Fatal(err)
		}
		c := &scriptConn{in: bytes.NewReader(in)}
		s.wg.Add(1)
		s.handshake(c, false)

		var h pb.PeerHello
		decoded := false
		if len(in) >= 4 {
			n := binary.BigEndian.Uint32(in)
			if n <= maxHelloBytes && uint64(len(in)-4) >= uint64(n) && proto.Unmarshal(in[4:4+n], &h) == nil {
				decoded = true
			}
		}
		reply := c.out.Bytes()
		switch {
		case len(reply) > 1:
			t.Fatalf("handshake answered %d bytes, want at most 1", len(reply))
		case decoded != (len(reply) == 1):
			t.Fatalf("hello decodes: %v, answer %v: every decodable hello gets one answer, garbage none", decoded, reply)
		case len(reply) == 1 && reply[0] == bulkOK:
			if h.Job != "j" || h.Generation != 5 || h.To != 0 || h.WorldSize != 3 || (h.From != 1 && h.From != 2) {
				t.Fatalf("accepted a link the group does not have: %v", &h)
			}
			if c.closed {
				t.Fatal("accepted connection was closed")
			}
		case len(reply) == 1 && !c.closed:
			t.Fatalf("refused connection (answer %d) left open", reply[0])
		}
	})
}

// scriptConn is a net.Conn that reads a fixed input (then EOF) and records
// what is written.
type scriptConn struct {
	in     *bytes.Reader
	out    bytes.Buffer
	closed bool
}

func (c *scriptConn) Read(b []byte) (int, error)       { return c.in.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *scriptConn) Close() error                     { c.closed = true; return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }
