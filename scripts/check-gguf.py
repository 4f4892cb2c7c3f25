#!/usr/bin/env python3
"""Cross-check a capbench GGUF export with llama.cpp's own reader (gguf-py).

    python3 -m venv .venv && .venv/bin/pip install gguf
    capbench export-gguf --model dense-small --format q4_0 --out q.gguf
    capbench export-gguf --model dense-small --format f32  --out f.gguf
    .venv/bin/python scripts/check-gguf.py q.gguf f.gguf

gguf-py parses the file (metadata and tensor table) and dequantizes each
quantized tensor with its reference code; every element must lie within one
quantization step of the f32 export of the same seed (q4_0/q8_0 clamp the
extreme of the opposite sign to the last level, hence one step, not half).
Exit 0 when every tensor passes, 1 otherwise.
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

LEVELS = {"Q4_0": 8.0, "Q8_0": 127.0}


def main(quant_path: str, f32_path: str) -> int:
    quant = {t.name: t for t in GGUFReader(quant_path).tensors}
    ref = {t.name: t for t in GGUFReader(f32_path).tensors}
    bad = 0
    for name, t in quant.items():
        kind = t.tensor_type.name
        if kind not in LEVELS:
            continue
        got = dequantize(t.data, t.tensor_type).reshape(-1, 32)
        want = np.asarray(ref[name].data, dtype=np.float32).reshape(-1, 32)
        step = np.abs(want).max(axis=1, keepdims=True) / LEVELS[kind]
        err = (np.abs(got - want) / np.where(step > 0, step, 1)).max()
        ok = err <= 1.0 + 1e-2
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {name:28} {kind} max error {err:.3f} steps")
    print(f"{len(quant)} tensors read; {bad} outside one quantization step")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
