#!/usr/bin/env python3
"""Writes the PyTorch reference fixture for pkg/model's encoder-decoder (encdec_test.go).

The model classes are copied from the benchmark recipe bench/torch/seq2seq_reverse.py
(the 2017 Transformer: embeddings * sqrt(d_model) + sinusoidal PE, post-LN encoder
and decoder layers, key padding in encoder self-attention and cross-attention,
causal + key padding decoder self-attention, ReLU FFN, no final LayerNorm,
pre-softmax projection tied to tgt_emb without bias), so that this repository
stays self-contained. A tiny configuration (1 encoder layer, 2 decoder layers, to
exercise NDecLayer != NLayer) gets random, deliberately non-trivial parameters
(LayerNorm weights/biases away from 1/0) and is then trained briefly on the
reversal task, so that greedy decoding is not the constant output of a random
network; the parameters are float32 values, and the fixture's forward and
backward run in float64 on them.

Files:
  encdec.json                config, batch (Go Batch fields), loss, logits (B,T,V),
                             and greedy decoding of the batch's sources
  encdec_weights.safetensors parameters, by state_dict name (float32)
  encdec_grads.safetensors   d loss / d parameter, same names (float32)

Run with Debian's python3 (torch 1.13; no safetensors package needed):
  /usr/bin/python3 pkg/model/testdata/gen_encdec_fixture.py
"""
import json
import math
import os
import struct
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))

PAD, BOS, EOS = 10, 11, 12
MAX_LEN = 16  # longest digit string of the recipe (default of greedy_decode)
VOCAB = 13
IGNORE_INDEX = -1  # pkg/model.IgnoreIndex


# ----------------------------------------------------------------------------
# model: copied from bench/torch/seq2seq_reverse.py (unchanged maths)

@dataclass
class Seq2SeqConfig:
    vocab_size: int = VOCAB
    n_enc_layer: int = 2
    n_dec_layer: int = 2
    d_model: int = 128
    n_head: int = 4
    d_ff: int = 512
    dropout: float = 0.0
    max_len: int = 64
    layer_norm_eps: float = 1e-5


def sinusoidal_table(n_pos, d):
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    div = torch.pow(10000.0, torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe = torch.zeros(n_pos, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos / div)
    pe[:, 1::2] = torch.cos(pos / div)
    return pe.float()


class MultiHeadAttention(nn.Module):

    def __init__(self, cfg):
        super().__init__()
        assert cfg.d_model % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.attn_dropout = nn.Dropout(cfg.dropout)

    def forward(self, xq, xkv, mask):
        """mask: bool, broadcastable to (B, nh, Tq, Tk); True = may NOT attend."""
        Bs, Tq, Cn = xq.size()
        Tk = xkv.size(1)
        hs = Cn // self.n_head
        q = self.q_proj(xq).view(Bs, Tq, self.n_head, hs).transpose(1, 2)  # (B, nh, Tq, hs)
        k = self.k_proj(xkv).view(Bs, Tk, self.n_head, hs).transpose(1, 2)
        v = self.v_proj(xkv).view(Bs, Tk, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(mask, float('-inf'))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(Bs, Tq, Cn)
        return self.out_proj(y)


class FeedForward(nn.Module):

    def __init__(self, cfg):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class EncoderLayer(nn.Module):

    def __init__(self, cfg):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg)
        self.ln1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, src_mask):
        x = self.ln1(x + self.drop(self.self_attn(x, x, src_mask)))
        return self.ln2(x + self.drop(self.ffn(x)))


class DecoderLayer(nn.Module):

    def __init__(self, cfg):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg)
        self.ln1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.cross_attn = MultiHeadAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg)
        self.ln3 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mem, tgt_mask, src_mask):
        x = self.ln1(x + self.drop(self.self_attn(x, x, tgt_mask)))
        x = self.ln2(x + self.drop(self.cross_attn(x, mem, src_mask)))
        return self.ln3(x + self.drop(self.ffn(x)))


class Transformer(nn.Module):

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.src_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.tgt_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)  # also the pre-softmax projection (tied)
        self.register_buffer("pe", sinusoidal_table(cfg.max_len, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList([EncoderLayer(cfg) for _ in range(cfg.n_enc_layer)])
        self.decoder = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.n_dec_layer)])
        self.register_buffer("causal", torch.triu(torch.ones(cfg.max_len, cfg.max_len, dtype=torch.bool), 1),
                             persistent=False)
        for name, p in self.named_parameters():
            if name.endswith("_emb.weight"):
                nn.init.normal_(p, mean=0.0, std=cfg.d_model ** -0.5)
            elif p.dim() >= 2:
                nn.init.xavier_uniform_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        # LayerNorm weights keep their default 1

    def embed(self, emb, tokens):
        return self.drop(emb(tokens) * math.sqrt(self.config.d_model) + self.pe[:tokens.size(1)])

    def encode(self, src):
        src_mask = (src == PAD)[:, None, None, :]  # (B, 1, 1, S)
        x = self.embed(self.src_emb, src)
        for layer in self.encoder:
            x = layer(x, src_mask)
        return x, src_mask

    def decode(self, tgt_in, mem, src_mask):
        T = tgt_in.size(1)
        tgt_mask = self.causal[:T, :T][None, None] | (tgt_in == PAD)[:, None, None, :]  # (B, 1, T, T)
        x = self.embed(self.tgt_emb, tgt_in)
        for layer in self.decoder:
            x = layer(x, mem, tgt_mask, src_mask)
        return F.linear(x, self.tgt_emb.weight)  # tied pre-softmax projection, (B, T, vocab)

    def forward(self, src, tgt_in, tgt_out=None):
        mem, src_mask = self.encode(src)
        logits = self.decode(tgt_in, mem, src_mask)
        loss = None
        if tgt_out is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), tgt_out.view(-1), ignore_index=PAD)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{'params': [p for p in params if p.dim() >= 2], 'weight_decay': weight_decay},
                  {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)

    @torch.no_grad()
    def greedy_decode(self, src, max_len=MAX_LEN + 1):
        """Greedy from [BOS]; a row is finished at its first [EOS] (later tokens are [PAD]).
        Returns (B, max_len) generated tokens (without [BOS])."""
        mem, src_mask = self.encode(src)
        ys = torch.full((src.size(0), 1), BOS, dtype=torch.long)
        done = torch.zeros(src.size(0), dtype=torch.bool)
        for _ in range(max_len):
            nxt = self.decode(ys, mem, src_mask)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            ys = torch.cat([ys, nxt[:, None]], dim=1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        out = torch.full((src.size(0), max_len), PAD, dtype=torch.long)
        out[:, :ys.size(1) - 1] = ys[:, 1:]
        return out


def make_tensors(digits, lengths):
    """src (n, S), tgt_in = [BOS]+reversed (n, S+1), tgt_out = reversed+[EOS] (n, S+1); S = longest string."""
    S = int(lengths.max())
    src = digits[:, :S]
    j = torch.arange(S)[None, :]
    rev_idx = (lengths[:, None] - 1 - j).clamp(min=0)
    rev = torch.gather(src, 1, rev_idx)
    rev[j >= lengths[:, None]] = PAD
    n = src.size(0)
    tgt_in = torch.cat([torch.full((n, 1), BOS, dtype=torch.long), rev], dim=1)
    tgt_out = torch.cat([rev, torch.full((n, 1), PAD, dtype=torch.long)], dim=1)
    tgt_out[torch.arange(n), lengths] = EOS
    return src, tgt_in, tgt_out


# ----------------------------------------------------------------------------
# fixture plumbing

def write_safetensors(path, tensors):
    """tensors: list of (name, float tensor); written as F32 in list order."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        b = t.detach().to(torch.float32).contiguous().numpy().astype('<f4').tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def perturb_(model, gen):
    """Random non-trivial float32-representable parameters, in place."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if p.dim() == 1 and ".ln" in name and name.endswith("weight"):
                v = 1.0 + 0.3 * r
            elif name.endswith("bias"):
                v = 0.2 * r
            elif name.endswith("_emb.weight"):
                v = 0.5 * r
            else:  # Linear weight (out, in)
                v = r / math.sqrt(p.shape[1])
            p.copy_(v.to(torch.float32).to(torch.float64))


def train_briefly_(model, gen, steps=300):
    """A few hundred AdamW steps on reversal of 3..6 digits (float32), so that greedy
    decoding produces varied tokens and [EOS]s instead of a random model's constant
    output; the parameters are then rounded to float32 again."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(steps):
        lengths = torch.randint(3, 7, (32,), generator=gen)
        digits = torch.randint(0, 10, (32, 6), generator=gen)
        digits[torch.arange(6)[None, :] >= lengths[:, None]] = PAD
        src, tgt_in, tgt_out = make_tensors(digits, lengths)
        _, loss = model(src, tgt_in, tgt_out)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"after {steps} training steps: minibatch loss {float(loss):.4f}")


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def main():
    torch.manual_seed(20170612)
    gen = torch.Generator().manual_seed(2017)
    cfg = Seq2SeqConfig(n_enc_layer=1, n_dec_layer=2, d_model=16, n_head=2, d_ff=32, max_len=12)
    model = Transformer(cfg)
    perturb_(model, gen)
    train_briefly_(model, gen)
    model.zero_grad(set_to_none=True)  # the fixture's gradients are of its own batch only
    model = model.double()

    lengths = torch.tensor([6, 4, 5])
    digits = torch.randint(0, 10, (3, 6), generator=gen)
    digits[torch.arange(6)[None, :] >= lengths[:, None]] = PAD
    src, tgt_in, tgt_out = make_tensors(digits, lengths)  # (3, 6), (3, 7), (3, 7)
    logits, loss = model(src, tgt_in, tgt_out)
    loss.backward()
    max_len = 8
    greedy = model.greedy_decode(src, max_len=max_len)

    sd = list(model.state_dict().items())
    grads = dict(model.named_parameters())
    write_safetensors(os.path.join(HERE, "encdec_weights.safetensors"), sd)
    write_safetensors(os.path.join(HERE, "encdec_grads.safetensors"), [(k, grads[k].grad) for k, _ in sd])
    Bs, T = tgt_in.shape
    S = src.size(1)
    targets = torch.where(tgt_out == PAD, torch.full_like(tgt_out, IGNORE_INDEX), tgt_out)
    fx = {
        "generator": "gen_encdec_fixture.py (PyTorch %s, float64 on float32 parameters)" % torch.__version__,
        "config": {"arch": "encdec", "n_layer": cfg.n_enc_layer, "n_dec_layer": cfg.n_dec_layer, "n_head": cfg.n_head,
                   "n_embd": cfg.d_model, "n_hidden": cfg.d_ff, "block_size": cfg.max_len,
                   "vocab_size": cfg.vocab_size, "dropout": 0.0, "activation": "relu",
                   "layer_norm_eps": cfg.layer_norm_eps},
        "batch": {"B": Bs, "T": T, "S": S, "tokens": tgt_in.reshape(-1).tolist(),
                  "targets": targets.reshape(-1).tolist(), "key_valid": (tgt_in != PAD).int().reshape(-1).tolist(),
                  "src": src.reshape(-1).tolist(), "src_valid": (src != PAD).int().reshape(-1).tolist()},
        "loss": float(loss),
        "logits_shape": [Bs, T, VOCAB],
        "logits": flat(logits),
        "pad": PAD, "bos": BOS, "eos": EOS,
        "greedy_max_len": max_len,
        "greedy": greedy.reshape(-1).tolist(),  # (B, max_len); [PAD] after a row's first [EOS]
    }
    with open(os.path.join(HERE, "encdec.json"), "w") as f:
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in fx.items()) + "\n}\n")
    n = sum(p.numel() for p in model.parameters())
    print(f"encdec: {n} parameters, loss {float(loss):.6f}, greedy {greedy.tolist()}")


if __name__ == "__main__":
    main()
