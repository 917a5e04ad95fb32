package tokenizer

import (
	"container/heap"
	"context"
	"fmt"
	"runtime"
	"sync"
)

// TrainOptions configures Train.
type TrainOptions struct {
	// VocabSize is the size of the result: 256 byte tokens, the merges, then
	// the specials. It must be at least 256 + len(Specials).
	VocabSize int
	// Specials are appended after the merges, in this order.
	Specials []string
	// Threads pre-tokenizes the texts in parallel (0: GOMAXPROCS).
	Threads int
	// Pattern is the pre-tokenization (default GPT-2's).
	Pattern Pattern
}

// Train learns a byte-level BPE from texts (minbpe's RegexTokenizer.train):
// pre-tokenize with GPT-2's pattern, count each distinct pre-token once with
// its frequency, then repeatedly merge the most frequent adjacent pair
// (ties: the smallest pair of ids) into a new token. Ids 0–255 are the
// bytes. Specials in the texts are not split out (they train as text).
// It stops early, with fewer tokens, when no pair occurs twice or more.
func Train(ctx context.Context, texts []string, opt TrainOptions) (*BPE, error) {
	if opt.VocabSize < 256+len(opt.Specials) {
		return nil, fmt.Errorf("vocab size %d is too small: a byte-level BPE needs 256 byte tokens plus %d specials", opt.VocabSize, len(opt.Specials))
	}
	counts := countPieces(texts, opt.Pattern, opt.Threads)
	words := make([][]int32, 0, len(counts))
	freq := make([]int64, 0, len(counts))
	for piece, n := range counts {
		w := make([]int32, len(piece))
		for i := 0; i < len(piece); i++ {
			w[i] = int32(piece[i])
		}
		words = append(words, w)
		freq = append(freq, n)
	}
	tokens := make([][]byte, 256, opt.VocabSize)
	for b := range tokens {
		tokens[b] = []byte{byte(b)}
	}
	var merges []pair
	st := newPairStats(words, freq)
	for len(tokens) < opt.VocabSize-len(opt.Specials) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("train tokenizer: %w", err)
		}
		p, n := st.best()
		if n < 2 {
			break
		}
		id := int32(len(tokens))
		tokens = append(tokens, append(append([]byte{}, tokens[p[0]]...), tokens[p[1]]...))
		merges = append(merges, p)
		st.apply(p, id)
	}
	specials := make(map[string]int32, len(opt.Specials))
	for _, s := range opt.Specials {
		if _, dup := specials[s]; dup {
			return nil, fmt.Errorf("special token %q is listed twice", s)
		}
		specials[s] = int32(len(tokens))
		tokens = append(tokens, nil)
	}
	t, err := newBPE(tokens, merges, specials)
	if err != nil {
		return nil, err
	}
	t.pattern = opt.Pattern
	return t, nil
}

// countPieces counts pat's pre-tokens over texts, split across threads.
func countPieces(texts []string, pat Pattern, threads int) map[string]int64 {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	var segs []string
	for _, t := range texts {
		segs = append(segs, Segments(t, 1<<20)...)
	}
	parts := make([]map[string]int64, threads)
	var wg sync.WaitGroup
	for w := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := map[string]int64{}
			for i := w; i < len(segs); i += threads {
				for _, p := range pat.Split(segs[i]) {
					m[p]++
				}
			}
			parts[w] = m
		}()
	}
	wg.Wait()
	total := parts[0]
	for _, m := range parts[1:] {
		for k, v := range m {
			total[k] += v
		}
	}
	return total
}

// pairStats keeps the frequency of every adjacent pair over the distinct
// words, which words hold it, and a max-heap of (count, pair) entries that
// goes stale lazily: an entry is current only if its count is the pair's.
type pairStats struct {
	words [][]int32
	freq  []int64
	count map[pair]int64
	where map[pair]map[int32]struct{}
	h     pairHeap
}

func newPairStats(words [][]int32, freq []int64) *pairStats {
	s := &pairStats{words: words, freq: freq, count: map[pair]int64{}, where: map[pair]map[int32]struct{}{}}
	for wi, w := range words {
		s.add(int32(wi), w, 1)
	}
	for p, n := range s.count {
		s.h = append(s.h, pairCount{p, n})
	}
	heap.Init(&s.h)
	return s
}

// add adds sign × the word's frequency to each of its pairs.
func (s *pairStats) add(wi int32, w []int32, sign int64) {
	for i := 0; i+1 < len(w); i++ {
		p := pair{w[i], w[i+1]}
		s.count[p] += sign * s.freq[wi]
		if sign > 0 {
			set := s.where[p]
			if set == nil {
				set = map[int32]struct{}{}
				s.where[p] = set
			}
			set[wi] = struct{}{}
		}
	}
}

// best pops stale entries and returns the most frequent pair (smallest on ties).
func (s *pairStats) best() (pair, int64) {
	for s.h.Len() > 0 {
		top := s.h[0]
		if s.count[top.p] == top.n {
			return top.p, top.n
		}
		heap.Pop(&s.h)
	}
	return pair{}, 0
}

// apply merges p into id in every word that holds it, updating the counts.
func (s *pairStats) apply(p pair, id int32) {
	changed := map[pair]bool{}
	for wi := range s.where[p] {
		w := s.words[wi]
		before := snapshotPairs(w)
		s.add(wi, w, -1)
		out := w[:0]
		for i := 0; i < len(w); {
			if i+1 < len(w) && w[i] == p[0] && w[i+1] == p[1] {
				out = append(out, id)
				i += 2
			} else {
				out = append(out, w[i])
				i++
			}
		}
		s.words[wi] = out
		s.add(wi, out, 1)
		for _, q := range before {
			changed[q] = true
		}
		for i := 0; i+1 < len(out); i++ {
			changed[pair{out[i], out[i+1]}] = true
		}
	}
	delete(s.where, p)
	delete(s.count, p)
	for q := range changed {
		if n := s.count[q]; n > 0 {
			heap.Push(&s.h, pairCount{q, n})
		} else {
			delete(s.count, q)
		}
	}
}

func snapshotPairs(w []int32) []pair {
	ps := make([]pair, 0, len(w))
	for i := 0; i+1 < len(w); i++ {
		ps = append(ps, pair{w[i], w[i+1]})
	}
	return ps
}

type pairCount struct {
	p pair
	n int64
}

// pairHeap is a max-heap by count, then by the smaller pair.
type pairHeap []pairCount

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].n != h[j].n {
		return h[i].n > h[j].n
	}
	if h[i].p[0] != h[j].p[0] {
		return h[i].p[0] < h[j].p[0]
	}
	return h[i].p[1] < h[j].p[1]
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairCount)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Segments cuts text into pieces of about size bytes at places where GPT-2's
// pre-tokenization is unaffected by the cut: after a newline that is followed
// by a non-space (a newline run ends its own pre-token there). Encoding the
// segments one by one gives the ids of the whole text.
func Segments(text string, size int) []string {
	var out []string
	for len(text) > size {
		cut := -1
		for i := size; i+1 < len(text); i++ {
			if text[i] == '\n' {
				if k, _ := classAt(text, i+1); k != classSpace {
					cut = i + 1
					break
				}
			}
		}
		if cut < 0 {
			break
		}
		out = append(out, text[:cut])
		text = text[cut:]
	}
	return append(out, text)
}
