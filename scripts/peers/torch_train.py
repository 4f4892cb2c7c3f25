#!/usr/bin/env python3
"""PyTorch eager peer of capbench's `train-step/<model>/<dtype>`: a
llama-style model of the same shape (RMSNorm, rotate-half RoPE, GQA through
SDPA, SwiGLU, untied LM head), cross-entropy and AdamW with capbench's
hyper-parameters, timed step by step on the CPU. Prints one JSON object:
{"tokens_per_s": [one value per timed step]}.

Defaults are `dense-small` (workloads/src/models/config.rs) at its default
train shape B=4, T=128. Example:
  python scripts/peers/torch_train.py --threads 2 --steps 5
  python scripts/peers/torch_train.py --threads 2 --dtype bf16   # autocast
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):
    # x (B, H, T, hd); rotate-half layout as capbench's synthetic models
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Llama(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        hd = a.dim // a.heads
        self.hd = hd
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)
        self.embed = torch.nn.Embedding(a.vocab, a.dim)
        self.layers = torch.nn.ModuleList()
        for _ in range(a.layers):
            m = torch.nn.Module()
            m.attn_norm = torch.nn.Parameter(torch.ones(a.dim))
            m.wq = lin(a.dim, a.heads * hd)
            m.wk = lin(a.dim, a.kv_heads * hd)
            m.wv = lin(a.dim, a.kv_heads * hd)
            m.wo = lin(a.heads * hd, a.dim)
            m.ffn_norm = torch.nn.Parameter(torch.ones(a.dim))
            m.gate = lin(a.dim, a.ffn)
            m.up = lin(a.dim, a.ffn)
            m.down = lin(a.ffn, a.dim)
            self.layers.append(m)
        self.final_norm = torch.nn.Parameter(torch.ones(a.dim))
        self.lm_head = lin(a.dim, a.vocab)
        pos = torch.arange(a.seq, dtype=torch.float64)[:, None]
        freq = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.cat((pos * freq, pos * freq), dim=-1)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, tok):
        a, hd = self.a, self.hd
        b, t = tok.shape
        x = self.embed(tok)
        cos, sin = self.cos[:t].to(x.dtype), self.sin[:t].to(x.dtype)
        for m in self.layers:
            h = rms_norm(x, m.attn_norm, 1e-5)
            q = m.wq(h).view(b, t, a.heads, hd).transpose(1, 2)
            k = m.wk(h).view(b, t, a.kv_heads, hd).transpose(1, 2)
            v = m.wv(h).view(b, t, a.kv_heads, hd).transpose(1, 2)
            q, k = rope(q, cos.to(q.dtype), sin.to(q.dtype)), rope(k, cos.to(k.dtype), sin.to(k.dtype))
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            x = x + m.wo(o.transpose(1, 2).reshape(b, t, a.heads * hd))
            h = rms_norm(x, m.ffn_norm, 1e-5)
            x = x + m.down(F.silu(m.gate(h)) * m.up(h))
        return self.lm_head(rms_norm(x, self.final_norm, 1e-5))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=None, help="default: heads / 2 (dense-small: 4)")
    p.add_argument("--ffn", type=int, default=1408)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    a = p.parse_args()
    if a.kv_heads is None:
        a.kv_heads = max(1, a.heads // 2)
    if a.dim % a.heads or a.heads % a.kv_heads:
        sys.exit(f"torch_train.py: --dim {a.dim} must divide by --heads {a.heads}, and --heads by --kv-heads {a.kv_heads}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    tok = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=g)
    inputs, targets = tok[:, :-1], tok[:, 1:].reshape(-1)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float().view(-1, a.vocab), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(2):
        step()
    rates = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        rates.append(a.batch * a.seq / (time.perf_counter() - t0))
        if not math.isfinite(loss):
            sys.exit("torch_train.py: loss is not finite")
    print(json.dumps({"tokens_per_s": rates}))


if __name__ == "__main__":
    main()
