#!/usr/bin/env python3
"""Writes golden.safetensors the way the reference (Hugging Face) writer lays it out,
using only json/struct/numpy, so the Go reader is checked against bytes it did not write.

Tensors (values chosen to be exact in every dtype):
  "a.f32"  F32  shape (2, 3)  values 0.5*k - 1    for k = 0..5
  "b.f16"  F16  shape (4,)    values [1.5, -2.0, 65504.0, 6.103515625e-05 * 0.5]  (last one subnormal)
  "c.bf16" BF16 shape (2, 2)  values [1.0, -0.5, 3.0e38 truncated to bf16, 0.0078125]
  "d.f64"  F64  shape ()      value 3.25
  "e.empty" F32 shape (0, 4)  no values
The header lists the tensors out of buffer order (the buffer order is b, a, e, c, d)
and carries __metadata__ {"format": "pt", "source": "gen_golden.py"}.

Usage: /usr/bin/python3 gen_golden.py   (writes golden.safetensors next to this file)
"""
import json
import os
import struct

import numpy as np

a = (0.5 * np.arange(6, dtype=np.float32) - 1).reshape(2, 3).astype('<f4')
b = np.array([1.5, -2.0, 65504.0, 6.103515625e-05 * 0.5], dtype='<f2')
c32 = np.array([1.0, -0.5, 3.0e38, 0.0078125], dtype='<f4')
c = (c32.view('<u4') >> 16).astype('<u2').reshape(2, 2)  # bf16 = top 16 bits of f32
d = np.array(3.25, dtype='<f8')
e = np.zeros((0, 4), dtype='<f4')

order = [("b.f16", "F16", b), ("a.f32", "F32", a), ("e.empty", "F32", e), ("c.bf16", "BF16", c), ("d.f64", "F64", d)]
header, blobs, off = {}, [], 0
for name, dtype, arr in order:
    raw = arr.tobytes()
    header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
# header key order differs from buffer order on purpose
listed = {"__metadata__": {"format": "pt", "source": "gen_golden.py"}}
for name in ["a.f32", "c.bf16", "b.f16", "d.f64", "e.empty"]:
    listed[name] = header[name]
text = json.dumps(listed, separators=(",", ":")).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for raw in blobs:
        f.write(raw)
