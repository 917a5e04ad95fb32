package tokenizer

import (
	"context"
	"testing"
)

// BenchmarkTrain4096 trains a 4,096-token vocabulary on (up to) tiny
// shakespeare, the closing note's figure.
func BenchmarkTrain4096(b *testing.B) {
	text := corpus(b, 1<<21)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := Train(context.Background(), []string{text}, TrainOptions{VocabSize: 4096, Specials: []string{"<|endoftext|>"}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode encodes tiny shakespeare with a 4,096-token vocabulary on
// one core, with and without the pre-token cache (MB/s).
func BenchmarkEncode(b *testing.B) {
	text := corpus(b, 1<<21)
	tok, err := Train(context.Background(), []string{text}, TrainOptions{VocabSize: 4096})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cache", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			tok.AppendEncode(nil, text, Cache{})
		}
	})
	b.Run("nocache", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			tok.AppendEncode(nil, text, nil)
		}
	})
}
