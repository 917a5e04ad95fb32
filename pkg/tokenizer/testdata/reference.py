"""Independent references for pkg/tokenizer's tests, in plain Python.

  reference.py split                      < text  -> JSON list of pre-tokens
  reference.py gpt2 VOCAB.json MERGES.txt < text  -> JSON list of ids
  reference.py tiktoken RANKS.tiktoken    < text  -> JSON list of ids

`split` is GPT-2's pattern run by the `regex` module. `gpt2` is the bpe()
and encode() of openai/gpt-2 src/encoder.py. `tiktoken` is the byte-pair
merge of tiktoken's _educational.py (lowest-ranked adjacent concatenation,
one place at a time). Input is read as UTF-8 bytes from stdin.
"""
import base64
import json
import sys

import regex as re

PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


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


def main():
    text = sys.stdin.buffer.read().decode("utf-8")
    mode = sys.argv[1]
    if mode == "split":
        out = re.findall(PAT, text)
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
        out = []
        for piece in re.findall(PAT, text):
            out.extend(tiktoken_bpe_encode(ranks, piece.encode("utf-8")))
    else:
        sys.exit("unknown mode " + mode)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
