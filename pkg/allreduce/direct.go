package allreduce

import "context"

// direct is the latency path for small buffers (and the barrier, with an
// empty buf): every rank sends buf to every other rank, receives the others'
// buffers, and sums the n contributions in rank order 0…n−1, so that every
// rank computes the same bits. One message latency instead of the ring's
// 2(n−1).
func (c *Communicator) direct(ctx context.Context, seq uint64, kind Kind, buf []float32, op Op) error {
	n, r, l := c.size, c.rank, len(buf)
	h := c.header(seq, kind, l, 0)
	all := c.scratchBuf(n * l) // slot j holds rank j's contribution
	err := duplex(ctx,
		func(ctx context.Context) error {
			for i := 1; i < n; i++ {
				if err := c.send(ctx, (r+i)%n, h, buf); err != nil {
					return err
				}
			}
			return nil
		},
		func(ctx context.Context) error {
			for i := 1; i < n; i++ {
				from := (r + n - i) % n
				if err := c.recv(ctx, from, h, all[from*l:(from+1)*l]); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil || l == 0 {
		return err
	}
	copy(all[r*l:(r+1)*l], buf)
	copy(buf, all[:l])
	for j := 1; j < n; j++ {
		addTo(buf, all[j*l:(j+1)*l])
	}
	if op == Avg {
		divide(buf, float32(n))
	}
	return nil
}

// chain broadcasts root's buf along the ring root → root+1 → … in chunks, each
// rank forwarding chunk k while its successor receives chunk k−1. Small
// buffers go from the root to every rank directly.
func (c *Communicator) chain(ctx context.Context, seq uint64, buf []float32, root int) error {
	n, r, total := c.size, c.rank, len(buf)
	if total*4 <= c.smallBytes {
		h := c.header(seq, KindBroadcast, total, 0)
		if r != root {
			return c.recv(ctx, root, h, buf)
		}
		for i := 1; i < n; i++ {
			if err := c.send(ctx, (root+i)%n, h, buf); err != nil {
				return err
			}
		}
		return nil
	}
	pos := (r - root + n) % n
	right, left := (r+1)%n, (r+n-1)%n
	nsub := max(1, (total*4+c.chunkBytes-1)/c.chunkBytes)
	for k := range nsub {
		lo, hi := Part(total, nsub, k)
		h := c.header(seq, KindBroadcast, total, k)
		if pos > 0 {
			if err := c.recv(ctx, left, h, buf[lo:hi]); err != nil {
				return err
			}
		}
		if pos < n-1 {
			if err := c.send(ctx, right, h, buf[lo:hi]); err != nil {
				return err
			}
		}
	}
	return nil
}
