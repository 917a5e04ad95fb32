#!/usr/bin/env python3
"""Load a GPT that ringmaster exported as safetensors into nanoGPT's PyTorch
model (strict load_state_dict but for the causal-mask buffers) and print its loss on a batch, as JSON.

usage: check_export.py WEIGHTS.safetensors BATCH.json
BATCH.json: {"config": {n_layer, n_head, n_embd, block_size, vocab_size, bias},
             "B": .., "T": .., "tokens": [...], "targets": [...]}
The tied lm_head.weight is stored once (as transformer.wte.weight), the
safetensors convention for shared tensors; it is re-tied here.
"""
import json
import struct
import sys

import numpy as np
import torch

from gen_gpt_fixture import GPT, Cfg


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        buf = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        b, e = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(buf[b:e], dtype="<f4").copy()).reshape(info["shape"])
    return out


def main():
    sd = read_safetensors(sys.argv[1])
    with open(sys.argv[2]) as f:
        batch = json.load(f)
    model = GPT(Cfg(dropout=0.0, **batch["config"]))
    sd.setdefault("lm_head.weight", sd["transformer.wte.weight"])
    # Strict except for the causal-mask buffers (".attn.bias"), which are not
    # parameters; nanoGPT's own from_pretrained skips them the same way.
    res = model.load_state_dict(sd, strict=False)
    missing = [k for k in res.missing_keys if not k.endswith(".attn.bias")]
    if missing or res.unexpected_keys:
        sys.exit(f"state_dict mismatch: missing {missing}, unexpected {res.unexpected_keys}")
    model.eval()
    B, T = batch["B"], batch["T"]
    idx = torch.tensor(batch["tokens"], dtype=torch.long).view(B, T)
    tgt = torch.tensor(batch["targets"], dtype=torch.long).view(B, T)
    with torch.no_grad():
        _, loss = model(idx, tgt)
    print(json.dumps({"loss": loss.item()}))


if __name__ == "__main__":
    main()
