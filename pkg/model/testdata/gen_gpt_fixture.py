#!/usr/bin/python3
"""Generate the PyTorch reference fixtures for pkg/model's GPT (gpt_fixture_test.go).

Runs with Debian's /usr/bin/python3 (torch 1.13, numpy); needs nothing else.
The model below is nanoGPT's model.py (LayerNorm with optional bias,
CausalSelfAttention on the non-flash path, MLP with nn.GELU(), pre-LN Block,
GPT with lm_head tied to wte), copied so the fixture does not depend on any
other file. For each of bias=True and bias=False it writes

  gpt_<tag>.safetensors  the weights (safetensors written by hand: an 8-byte
                         little-endian header length, a JSON header, raw F32
                         data). The bias=True file also carries the tied
                         lm_head.weight (to exercise alias checking); the
                         bias=False file stores wte only, as HF does.
  gpt_<tag>.json         config, a batch, the loss, the logits, the head and
                         L2 norm of every gradient, the gradient norm, and the
                         parameter heads after clip_grad_norm_(1.0) and one
                         torch.optim.AdamW step with nanoGPT's param groups;
                         plus a greedy continuation of a prompt.

Usage: cd pkg/model/testdata && /usr/bin/python3 gen_gpt_fixture.py
"""
import json
import math
import struct

import torch
import torch.nn as nn
from torch.nn import functional as F


class LayerNorm(nn.Module):
    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.n_head, self.n_embd = c.n_head, c.n_embd
        self.register_buffer("bias", torch.tril(torch.ones(c.block_size, c.block_size))
                             .view(1, 1, c.block_size, c.block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = LayerNorm(c.n_embd, bias=c.bias)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class Cfg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c.vocab_size, c.n_embd),
            wpe=nn.Embedding(c.block_size, c.n_embd),
            h=nn.ModuleList([Block(c) for _ in range(c.n_layer)]),
            ln_f=LayerNorm(c.n_embd, bias=c.bias),
        ))
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith('c_proj.weight'):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


def write_safetensors(path, tensors):
    """tensors: list of (name, float32 tensor). Minimal safetensors writer."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        data = t.detach().contiguous().numpy().astype('<f4').tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt", "generator": "gen_gpt_fixture.py"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def r(x):
    return [float(v) for v in x]


def make(tag, bias, seed):
    torch.manual_seed(seed)
    c = Cfg(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=11, bias=bias)
    model = GPT(c)
    with torch.no_grad():  # move away from the tiny init so every path matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    named = [(n, p) for n, p in model.named_parameters()]  # tied weight listed once, as wte
    tensors = list(named)
    if bias:
        tensors.append(("lm_head.weight", model.lm_head.weight))
    write_safetensors(f"gpt_{tag}.safetensors", tensors)

    # greedy decoding with the loaded weights (before the optimizer step)
    prompt = [1, 5, 3]
    seq = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(7):  # runs past block_size: the context is cropped
            ctx = seq[:, -c.block_size:]
            lg, _ = model(ctx, torch.full_like(ctx, -1))
            seq = torch.cat([seq, lg[:, -1, :].argmax(-1, keepdim=True)], dim=1)

    B, T = 3, 8
    idx = torch.randint(0, c.vocab_size, (B, T))
    targets = torch.randint(0, c.vocab_size, (B, T))
    targets[0, 2] = -1
    targets[2, 7] = -1
    logits, loss = model(idx, targets)
    loss.backward()
    grads = {n: {"head": r(p.grad.flatten()[:8]), "norm": float(p.grad.norm())} for n, p in named}

    clip, lr, wd, betas = 1.0, 1e-3, 0.1, (0.9, 0.95)
    gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
    decay = [p for n, p in named if p.dim() >= 2]
    nodecay = [p for n, p in named if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                             {"params": nodecay, "weight_decay": 0.0}], lr=lr, betas=betas)
    opt.step()
    after = {n: r(p.detach().flatten()[:8]) for n, p in named}

    fx = {
        "config": {"arch": "gpt", "n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd,
                   "block_size": c.block_size, "vocab_size": c.vocab_size, "bias": bias, "dropout": 0.0},
        "weights": f"gpt_{tag}.safetensors",
        "B": B, "T": T,
        "tokens": [int(v) for v in idx.flatten()],
        "targets": [int(v) for v in targets.flatten()],
        "loss": float(loss),
        "logits": r(logits.detach().flatten()),
        "grads": grads,
        "grad_norm": gnorm,
        "adamw": {"lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": 1e-8, "weight_decay": wd, "grad_clip": clip},
        "after_step": after,
        "greedy": {"prompt": prompt, "out": [int(v) for v in seq[0, len(prompt):]]},
        "torch_version": torch.__version__,
    }
    with open(f"gpt_{tag}.json", "w") as f:
        json.dump(fx, f, indent=1)
    print(f"{tag}: loss {float(loss):.6f}, grad norm {gnorm:.6f}, greedy {fx['greedy']['out']}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    make("bias", True, 1337)
    make("nobias", False, 2024)
