#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures for pkg/model's BERT (bert_test.go).

The model classes are copied from the benchmark recipe bench/torch/bert_mlm.py
(original BERT: post-LN, BERT's additive -10000 padding mask, gelu tanh, masked-LM
head tied to the word embeddings + mlm_bias), so that this repository stays
self-contained. A tiny configuration gets random, deliberately non-trivial
parameters (LayerNorm weights/biases away from 1/0, large enough weights that the
non-linearities are exercised), rounded to float32. The forward and backward pass
then run in float64 on those float32 values, so the expected numbers are exact
up to float64 rounding and a Go float32 implementation is measured against the
truth, not against another float32 summation order.

Two fixtures:
  bert      masked LM only, as in bert_mlm.py
  bert_cls  masked LM + a [CLS] classification head (pooler dense + tanh on the
            first token, then a classifier Linear; loss = MLM mean CE + class mean CE)

Each fixture is three files:
  <name>.json                config, batch (Go Batch fields), loss, logits
  <name>_weights.safetensors parameters, by state_dict name (float32)
  <name>_grads.safetensors   d loss / d parameter, same names (float32)

Run with Debian's python3 (torch 1.13; no safetensors package needed):
  /usr/bin/python3 pkg/model/testdata/gen_bert_fixture.py
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

# vocabulary of the fixture: chars 0..6, then the specials
N_CHARS = 7
PAD, CLS, SEP, MASK = 7, 8, 9, 10
VOCAB = 11
IGNORE_INDEX = -1  # pkg/model.IgnoreIndex


# ----------------------------------------------------------------------------
# model: copied from bench/torch/bert_mlm.py (unchanged maths)

@dataclass
class BertConfig:
    vocab_size: int = VOCAB
    max_position_embeddings: int = 64
    type_vocab_size: int = 2
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    intermediate_size: int = 512
    dropout: float = 0.0
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02


def gelu(x):
    """BERT's gelu: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return F.gelu(x, approximate='tanh')


class BertEmbeddings(nn.Module):

    def __init__(self, cfg):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.n_embd)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.n_embd)
        self.LayerNorm = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids, token_type_ids):
        T = input_ids.size(1)
        pos = torch.arange(T, dtype=torch.long, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(pos) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertAttention(nn.Module):
    """Bidirectional self-attention + output dense, residual, then LayerNorm (post-LN)."""

    def __init__(self, cfg):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.query = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.key = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.value = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.dense = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.out_dropout = nn.Dropout(cfg.dropout)
        self.LayerNorm = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)

    def forward(self, x, mask_add):
        Bs, T, Cn = x.size()
        hs = Cn // self.n_head
        q = self.query(x).view(Bs, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = self.key(x).view(Bs, T, self.n_head, hs).transpose(1, 2)
        v = self.value(x).view(Bs, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        if mask_add is not None:
            att = att + mask_add  # (B, 1, 1, T): 0 for real tokens, -10000 for [PAD]
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(Bs, T, Cn)
        return self.LayerNorm(x + self.out_dropout(self.dense(y)))


class BertLayer(nn.Module):

    def __init__(self, cfg):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = nn.Linear(cfg.n_embd, cfg.intermediate_size)
        self.output = nn.Linear(cfg.intermediate_size, cfg.n_embd)
        self.out_dropout = nn.Dropout(cfg.dropout)
        self.LayerNorm = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)

    def forward(self, x, mask_add):
        h = self.attention(x, mask_add)
        return self.LayerNorm(h + self.out_dropout(self.output(gelu(self.intermediate(h)))))


class BertForMaskedLM(nn.Module):

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.layers = nn.ModuleList([BertLayer(cfg) for _ in range(cfg.n_layer)])
        # MLM head ("cls/predictions"): transform, then decoder tied to word_embeddings + output bias
        self.mlm_dense = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.mlm_LayerNorm = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.apply(self._init_weights)

    def _init_weights(self, module):
        r = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=r, a=-2 * r, b=2 * r)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def encode(self, input_ids, token_type_ids=None, attention_mask=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        mask_add = None
        if attention_mask is not None:  # BERT's extended attention mask
            mask_add = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.layers:
            x = layer(x, mask_add)
        return x

    def mlm_logits(self, seq_out, positions):
        """positions: (B, P) indices into the sequence; returns (B, P, vocab)."""
        h = torch.gather(seq_out, 1, positions.unsqueeze(-1).expand(-1, -1, seq_out.size(-1)))
        h = self.mlm_LayerNorm(gelu(self.mlm_dense(h)))
        return F.linear(h, self.embeddings.word_embeddings.weight, self.mlm_bias)

    def forward(self, input_ids, positions, labels=None, token_type_ids=None, attention_mask=None):
        logits = self.mlm_logits(self.encode(input_ids, token_type_ids, attention_mask), positions)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1))
        return logits, loss


# ----------------------------------------------------------------------------
# fixture-only extension: BERT's [CLS] pooler + classifier (not in bert_mlm.py)

class BertWithClassifier(BertForMaskedLM):

    def __init__(self, cfg, n_classes):
        super().__init__(cfg)
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.classifier = nn.Linear(cfg.n_embd, n_classes)

    def forward(self, input_ids, positions, labels, class_labels, token_type_ids=None, attention_mask=None):
        seq_out = self.encode(input_ids, token_type_ids, attention_mask)
        logits = self.mlm_logits(seq_out, positions)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1))
        pooled = torch.tanh(self.pooler.dense(seq_out[:, 0]))
        cls_logits = self.classifier(pooled)
        loss = loss + F.cross_entropy(cls_logits, class_labels)
        return logits, cls_logits, loss


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
            if "LayerNorm.weight" in name:
                v = 1.0 + 0.3 * r
            elif name.endswith("bias"):
                v = 0.2 * r
            elif "embeddings" in name:
                v = 0.8 * r
            else:  # Linear weight (out, in)
                v = r / math.sqrt(p.shape[1])
            p.copy_(v.to(torch.float32).to(torch.float64))


def make_batch(gen, Bs, T, P, lengths):
    """BERT-style masked batch with padding and two segments.

    Returns input_ids, token types, attention mask (B, T), positions (B, P), labels (B, P)."""
    ids = torch.full((Bs, T), PAD, dtype=torch.long)
    types = torch.zeros((Bs, T), dtype=torch.long)
    att = torch.zeros((Bs, T), dtype=torch.long)
    pos = torch.zeros((Bs, P), dtype=torch.long)
    labels = torch.zeros((Bs, P), dtype=torch.long)
    for b in range(Bs):
        L = lengths[b]  # real tokens: [CLS] + L-2 chars + [SEP]
        chars = torch.randint(0, N_CHARS, (L - 2,), generator=gen)
        ids[b, 0] = CLS
        ids[b, 1:L - 1] = chars
        ids[b, L - 1] = SEP
        att[b, :L] = 1
        split = 1 + (L - 2) // 2  # second segment from the middle on (padding keeps type 0)
        types[b, split:L] = 1
        chosen = (torch.randperm(L - 2, generator=gen)[:P] + 1).sort().values
        pos[b] = chosen
        labels[b] = ids[b, chosen]
        for j, t in enumerate(chosen.tolist()):  # [MASK], a random char, unchanged, ...
            if j % 3 == 0:
                ids[b, t] = MASK
            elif j % 3 == 1:
                ids[b, t] = int(torch.randint(0, N_CHARS, (1,), generator=gen))
    return ids, types, att, pos, labels


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def main():
    torch.set_default_dtype(torch.float32)
    Bs, T, P = 3, 8, 3
    lengths = [8, 6, 5]
    for name, n_classes in (("bert", 0), ("bert_cls", 3)):
        torch.manual_seed(20181011)
        gen = torch.Generator().manual_seed(1810 + n_classes)
        cfg = BertConfig(vocab_size=VOCAB, max_position_embeddings=10, type_vocab_size=2, n_layer=2, n_head=2,
                         n_embd=16, intermediate_size=32)
        model = BertWithClassifier(cfg, n_classes) if n_classes else BertForMaskedLM(cfg)
        perturb_(model, gen)
        model = model.double()
        ids, types, att, pos, labels = make_batch(gen, Bs, T, P, lengths)
        targets = torch.full((Bs, T), IGNORE_INDEX, dtype=torch.long)
        targets.scatter_(1, pos, labels)
        if n_classes:
            class_labels = torch.randint(0, n_classes, (Bs,), generator=gen)
            logits, cls_logits, loss = model(ids, pos, labels, class_labels, types, att)
        else:
            logits, loss = model(ids, pos, labels, types, att)
        loss.backward()

        sd = [(k, v) for k, v in model.state_dict().items()]
        grads = dict(model.named_parameters())
        write_safetensors(os.path.join(HERE, f"{name}_weights.safetensors"), sd)
        write_safetensors(os.path.join(HERE, f"{name}_grads.safetensors"), [(k, grads[k].grad) for k, _ in sd])
        fx = {
            "generator": "gen_bert_fixture.py (PyTorch %s, float64 on float32 parameters)" % torch.__version__,
            "config": {"arch": "bert", "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
                       "n_hidden": cfg.intermediate_size, "block_size": cfg.max_position_embeddings,
                       "vocab_size": cfg.vocab_size, "dropout": 0.0, "activation": "gelu_tanh",
                       "layer_norm_eps": cfg.layer_norm_eps, "type_vocab_size": cfg.type_vocab_size,
                       "n_classes": n_classes},
            "batch": {"B": Bs, "T": T, "tokens": ids.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(),
                      "key_valid": att.reshape(-1).tolist(), "token_types": types.reshape(-1).tolist()},
            "loss": float(loss),
            "logits_shape": [Bs * P, VOCAB],  # rows = masked positions in (b, t) order
            "logits": flat(logits),
        }
        if n_classes:
            fx["batch"]["class_labels"] = class_labels.tolist()
            fx["class_logits"] = flat(cls_logits)
        with open(os.path.join(HERE, f"{name}.json"), "w") as f:
            f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in fx.items()) + "\n}\n")
        n = sum(p.numel() for p in model.parameters())
        print(f"{name}: {n} parameters, loss {float(loss):.6f}")


if __name__ == "__main__":
    main()
