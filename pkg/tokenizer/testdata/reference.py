"""Independent references for pkg/tokenizer's tests, in plain Python.

  reference.py split [cl100k]             < text  -> JSON list of pre-tokens
  reference.py gpt2 VOCAB.json MERGES.txt < text  -> JSON list of ids
  reference.py tiktoken RANKS [cl100k]   < text  -> JSON list of ids
  reference.py train N                    < text  -> JSON list of N merges [a, b]

`split` is GPT-2's pattern run by the `regex` module. `gpt2` is the bpe()
and encode() of openai/gpt-2 src/encoder.py. `tiktoken` is the byte-pair
merge of tiktoken's _educational.py (lowest-ranked adjacent concatenation,
one place at a time). `train` is minbpe's RegexTokenizer.train (count
pairs over the pre-tokens' bytes, merge the most frequent, new id 256 + i),
with ties broken to the smallest pair instead of dict order so that the
result is defined. Input is read as UTF-8 bytes from stdin.
"""
import base64
import json
import sys

import regex as re

PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
# tiktoken's cl100k_base pattern (openai_public.py), for `split cl100k` and
# `tiktoken RANKS cl100k`.
CL100K = re.compile(r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def get_pairs(word):
    pairs = set()
    prev = word[0]
    for ch in word[1:]:
        pairs.add((prev, ch))
        prev = ch
    return pairs


class GPT2Encoder:
    def __init__(self, encoder, bpe_merges):
        self.encoder = encoder
        self.byte_encoder = bytes_to_unicode()
        self.bpe_ranks = dict(zip(bpe_merges, range(len(bpe_merges))))
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        if not pairs:
            return token
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        word = " ".join(word)
        self.cache[token] = word
        return word

    def encode(self, text):
        bpe_tokens = []
        for token in re.findall(PAT, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            bpe_tokens.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return bpe_tokens


def tiktoken_bpe_encode(ranks, piece):
    parts = [bytes([b]) for b in piece]
    while True:
        min_idx, min_rank = None, None
        for i, pair in enumerate(zip(parts[:-1], parts[1:])):
            rank = ranks.get(pair[0] + pair[1])
            if rank is not None and (min_rank is None or rank < min_rank):
                min_idx, min_rank = i, rank
        if min_rank is None:
            break
        parts = parts[:min_idx] + [parts[min_idx] + parts[min_idx + 1]] + parts[min_idx + 2:]
    return [ranks[p] for p in parts]


def minbpe_train(text, num_merges):
    ids = [list(ch.encode("utf-8")) for ch in re.findall(PAT, text)]
    merges = []
    for i in range(num_merges):
        stats = {}
        for chunk in ids:
            for pair in zip(chunk, chunk[1:]):
                stats[pair] = stats.get(pair, 0) + 1
        if not stats:
            break
        pair = min(stats, key=lambda p: (-stats[p], p))
        if stats[pair] < 2:
            break
        idx = 256 + i
        new_ids = []
        for chunk in ids:
            out, j = [], 0
            while j < len(chunk):
                if j < len(chunk) - 1 and chunk[j] == pair[0] and chunk[j + 1] == pair[1]:
                    out.append(idx)
                    j += 2
                else:
                    out.append(chunk[j])
                    j += 1
            new_ids.append(out)
        ids = new_ids
        merges.append(list(pair))
    return merges


def main():
    text = sys.stdin.buffer.read().decode("utf-8")
    mode = sys.argv[1]
    if mode == "split":
        pat = CL100K if sys.argv[2:] == ["cl100k"] else PAT
        out = re.findall(pat, text)
    elif mode == "gpt2":
        with open(sys.argv[2], encoding="utf-8") as f:
            encoder = json.load(f)
        with open(sys.argv[3], encoding="utf-8") as f:
            lines = f.read().split("\n")[1:-1]
        enc = GPT2Encoder(encoder, [tuple(l.split()) for l in lines])
        out = enc.encode(text)
    elif mode == "tiktoken":
        ranks = {}
        with open(sys.argv[2], "rb") as f:
            for line in f.read().splitlines():
                if line:
                    tok, rank = line.split()
                    ranks[base64.b64decode(tok)] = int(rank)
        pat = CL100K if sys.argv[3:] == ["cl100k"] else PAT
        out = []
        for piece in re.findall(pat, text):
            out.extend(tiktoken_bpe_encode(ranks, piece.encode("utf-8")))
    elif mode == "train":
        out = minbpe_train(text, int(sys.argv[2]))
    else:
        sys.exit("unknown mode " + mode)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
