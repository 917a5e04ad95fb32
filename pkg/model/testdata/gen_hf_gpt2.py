"""Rewrite a nanoGPT-layout GPT .safetensors file in Hugging Face's GPT-2 layout.

  gen_hf_gpt2.py IN.safetensors OUT.safetensors BLOCK_SIZE

What transformers' GPT2LMHeadModel.save_pretrained writes for the same
weights, without transformers (not installed here): names without the
"transformer." prefix, the Conv1D projections (attn.c_attn, attn.c_proj,
mlp.c_fc, mlp.c_proj) stored [in, out], the tied lm_head omitted, and each
block's causal-mask buffer h.N.attn.bias (1, 1, T, T) included, as older
hub files have. Plain Python: the safetensors format is an 8-byte header
length, a JSON header, then the raw little-endian data.
"""
import json
import struct
import sys

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", (name, e["dtype"])
        lo, hi = e["data_offsets"]
        vals = list(struct.unpack("<%df" % ((hi - lo) // 4), data[lo:hi]))
        out[name] = (e["shape"], vals)
    return out


def write(path, tensors):
    header, blobs, off = {}, [], 0
    for name, (shape, vals) in tensors.items():
        b = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    src, dst, T = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out = {}
    for name, (shape, vals) in read(src).items():
        if name == "lm_head.weight":
            continue
        hf = name[len("transformer."):] if name.startswith("transformer.") else name
        if hf.endswith(CONV1D):
            r, c = shape
            vals = [vals[i * c + j] for j in range(c) for i in range(r)]
            shape = [c, r]
        out[hf] = (shape, vals)
        if hf.endswith("ln_1.weight"):
            block = hf[: -len("ln_1.weight")]
            mask = [1.0 if j <= i else 0.0 for i in range(T) for j in range(T)]
            out[block + "attn.bias"] = ([1, 1, T, T], mask)
    write(dst, out)


if __name__ == "__main__":
    main()
