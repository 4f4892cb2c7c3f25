#!/usr/bin/env python3
"""capbench's reference PyTorch worker (worker protocol v1, docs/worker-protocol.md).

Runs train-step/<dense shape>/<f32|bf16> and decode/<dense shape>/<f32|f16|bf16>
on the weights, batch and tokens capbench wrote for it (job "inputs"), checks
its loss, gradients or logits against capbench's reference before timing, and
samples like capbench's own worker. Requirements: torch, safetensors (PyPI).
"""
import json
import math
import sys
import time

PROTOCOL = 1


def probe():
    try:
        import safetensors  # noqa: F401
        import torch
    except ImportError as e:
        print(f"torch worker: {e} (pip install torch safetensors)", file=sys.stderr)
        return 1
    print(json.dumps({"protocol_version": PROTOCOL, "engine": f"torch {torch.__version__}"}))
    return 0


# --- the model: capbench's dense block (workloads/src/models/model.rs) ---


def rms_norm(torch, x, w, eps):
    dt = x.dtype
    xf = x.float()
    normed = xf / torch.sqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return normed.to(dt) * w.to(dt)


def rope_tables(torch, dim, theta, offset, t, dtype):
    half = dim // 2
    freqs = [1.0 / theta ** (2.0 * i / dim) for i in range(half)]
    ang = [[p * f for f in freqs] * 2 for p in range(offset, offset + t)]
    a = torch.tensor(ang, dtype=torch.float64)
    return a.cos().float().to(dtype), a.sin().float().to(dtype)


def rope(torch, x, cos, sin, interleaved):
    d = x.shape[-1]
    h = d // 2
    if not interleaved:
        rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
        return x * cos + rot * sin
    c, s = cos[:, :h].unsqueeze(-1), sin[:, :h].unsqueeze(-1)
    pairs = x.reshape(*x.shape[:-1], h, 2)
    x0, x1 = pairs[..., :1], pairs[..., 1:]
    return torch.cat([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).reshape(x.shape)


class Model:
    def __init__(self, torch, cfg, weights, dtype):
        self.torch, self.cfg, self.w, self.dtype = torch, cfg, weights, dtype
        self.rope = (0, None, None)

    def rope_tables(self, offset, t):
        """cos, sin for positions [offset, offset + t), from tables built
        once (per length) rather than on every decode step."""
        n, cos, sin = self.rope
        if offset + t > n:
            n = max(2 * (offset + t), 64)
            cos, sin = rope_tables(self.torch, self.cfg["head_dim"], self.cfg["rope_theta"], 0, n, self.dtype)
            self.rope = (n, cos, sin)
        return cos[offset : offset + t], sin[offset : offset + t]

    def p(self, name):
        return self.w[name].to(self.dtype)

    def forward(self, tokens, cache=None):
        """tokens (B, T) long → logits (B, T, V); `cache` (a list per layer
        of (k, v) or None) is extended in place."""
        torch, cfg = self.torch, self.cfg
        b, t = tokens.shape
        offset = 0 if cache is None or cache[0] is None else cache[0][0].shape[2]
        x = self.p("embed")[tokens.reshape(-1)].reshape(b, t, cfg["d_model"])
        s = offset + t
        i = torch.arange(t).unsqueeze(1)
        j = torch.arange(s).unsqueeze(0)
        mask = torch.where(j > i + offset, -1e9, 0.0).to(self.dtype)
        hd = cfg["head_dim"]
        cos, sin = self.rope_tables(offset, t)
        eps = cfg["norm_eps"]
        for l, (nh, nkv, _ffn) in enumerate(cfg["layers"]):
            pre = f"layers.{l}"
            h = rms_norm(torch, x, self.p(f"{pre}.attn_norm"), eps)

            def heads(y, n):
                return y.reshape(b, t, n, hd).transpose(1, 2)

            q = rope(torch, heads(h @ self.p(f"{pre}.wq").T, nh), cos, sin, cfg["rope_interleaved"])
            k = rope(torch, heads(h @ self.p(f"{pre}.wk").T, nkv), cos, sin, cfg["rope_interleaved"])
            v = heads(h @ self.p(f"{pre}.wv").T, nkv)
            if cache is not None:
                if cache[l] is not None:
                    k = torch.cat([cache[l][0], k], dim=2)
                    v = torch.cat([cache[l][1], v], dim=2)
                cache[l] = (k, v)
            rep = nh // nkv
            if rep > 1:
                k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)) + mask
            scores = scores - scores.max(dim=-1, keepdim=True).values.detach()
            e = scores.exp()
            att = (e / e.sum(dim=-1, keepdim=True)) @ v
            x = x + att.transpose(1, 2).reshape(b, t, nh * hd) @ self.p(f"{pre}.wo").T
            h = rms_norm(torch, x, self.p(f"{pre}.ffn_norm"), eps)
            g = torch.nn.functional.silu(h @ self.p(f"{pre}.ffn.gate").T)
            x = x + (g * (h @ self.p(f"{pre}.ffn.up").T)) @ self.p(f"{pre}.ffn.down").T
        x = rms_norm(torch, x, self.p("final_norm"), eps)
        head = self.p("embed") if cfg["tied_embeddings"] else self.p("lm_head")
        return x @ head.T


# --- sampling: capbench's rule (harness/src/worker.rs) ---


def median_ci(sorted_xs):
    n = len(sorted_xs)
    if n < 6:
        return None
    hw = 1.96 * math.sqrt(n) / 2.0
    lo = max(int(math.floor(n / 2.0 - hw)), 0)
    hi = min(int(math.ceil(n / 2.0 + hw)), n - 1)
    return sorted_xs[lo], sorted_xs[hi]


def sample(cfg, run_iter, out):
    for _ in range(cfg["warmup_iters"]):
        run_iter()
    out["warmup_iters"] = cfg["warmup_iters"]
    samples, extras = [], {}
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        timed, ex = run_iter()
        wall = time.perf_counter() - t
        samples.append(wall if timed is None else timed)
        for k, v in ex:
            extras.setdefault(k, []).append(v)
        n = len(samples)
        if n >= cfg["max_samples"]:
            reason = "max_samples"
            break
        if n < cfg["min_samples"]:
            continue
        s = sorted(samples)
        ci = median_ci(s)
        med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
        if ci and med > 0 and (ci[1] - ci[0]) / 2.0 / med <= cfg["target_ci_rel"]:
            reason = "ci_target"
            break
        if time.perf_counter() - start >= cfg["max_time_s"]:
            reason = "time_budget"
            break
    out.update(samples_wall_s=samples, extra_samples=extras, stop_reason=reason)


# --- the workloads ---


def train_step(torch, job, inputs, weights, ref, out):
    cfg, prm = inputs["model"], inputs["params"]
    dtype = torch.bfloat16 if prm["dtype"] == "bf16" else torch.float32
    master = {n: w.clone().requires_grad_(True) for n, w in weights.items()}
    model = Model(torch, cfg, master, dtype)
    x, y = ref["inputs"], ref["targets"]

    def loss_fn():
        logits = model.forward(x).float()
        lp = torch.log_softmax(logits.reshape(-1, logits.shape[-1]), dim=-1)
        return -lp.gather(1, y.reshape(-1, 1)).mean()

    t0 = time.perf_counter()
    loss = loss_fn()
    loss.backward()
    ref_loss = float(ref["loss"][0])
    loss_rel = abs(float(loss) - ref_loss) / max(abs(ref_loss), 1e-30)
    worst, worst_name, max_abs, elems, bad, missing = 0.0, "", 0.0, 0, 0, []
    for n, p in master.items():
        g, r = p.grad, ref.get(f"grad.{n}")
        if g is None or r is None:
            missing.append(n)
            continue
        g = g.double()
        bad += int((~torch.isfinite(g)).sum())
        elems += g.numel()
        if bool((g == 0).all()):
            missing.append(n)
        d = float((g - r.double()).abs().max())
        max_abs = max(max_abs, d)
        scaled = d / max(float(r.double().abs().max()), 1e-30)
        if scaled > worst:
            worst, worst_name = scaled, n
    tol = job["tolerance"]
    passed = not missing and bad == 0 and worst <= tol and loss_rel <= prm["loss_tolerance"]
    out["verify_s"] = time.perf_counter() - t0
    out["verification"] = {
        "passed": passed,
        "reference": "capbench's CPU f64 forward + backward of the same weights and batch",
        "elements_checked": elems,
        "max_abs_diff": max_abs,
        "max_rel_diff": loss_rel,
        "scaled_max_diff": worst,
        "tolerance": tol,
        "nan_or_inf": bad,
        "note": f"loss {float(loss):.6f} vs reference {ref_loss:.6f} (rel {loss_rel:.1e}, tolerance "
        f"{prm['loss_tolerance']:.0e}); worst gradient {worst_name} (scaled diff {worst:.1e}); "
        f"missing or zero gradients: {missing or 'none'}",
    }
    if not passed:
        out["status"] = "failed_verification"
        out["status_detail"] = "torch's loss or gradients differ from capbench's reference: " + out["verification"]["note"]
        return
    opt = torch.optim.AdamW(
        list(master.values()),
        lr=prm["lr"],
        betas=tuple(prm["betas"]),
        eps=prm["adam_eps"],
        weight_decay=prm["weight_decay"],
    )

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return None, [("loss", float(loss))]

    sample(job["sampling"], step, out)


def decode(torch, job, inputs, weights, ref, out):
    cfg, prm = inputs["model"], inputs["params"]
    dtypes = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
    if prm["format"] not in dtypes:
        out["status"] = "unsupported"
        out["status_detail"] = f"the torch worker runs float weights, not {prm['format']}"
        return
    model = Model(torch, cfg, {n: w.to(dtypes[prm["format"]]) for n, w in weights.items()}, dtypes[prm["format"]])
    n_layers = cfg["n_layers"]
    with torch.inference_mode():
        t0 = time.perf_counter()
        seq, ref_logits = ref["check_tokens"], ref["check_logits"].double()
        start = seq.shape[1] - ref_logits.shape[0]
        cache = [None] * n_layers
        rows = [model.forward(seq[:, : start + 1], cache)[0, -1]]
        for p in range(start + 1, seq.shape[1]):
            rows.append(model.forward(seq[:, p : p + 1], cache)[0, -1])
        got = torch.stack(rows).double()
        bad = int((~torch.isfinite(got)).sum())
        max_abs = float((got - ref_logits).abs().max())
        scaled = max_abs / max(float(ref_logits.abs().max()), 1e-30)
        lp_ref = torch.log_softmax(ref_logits, -1)
        lp = torch.log_softmax(got, -1)
        kl = float((lp_ref.exp() * (lp_ref - lp)).sum(-1).mean())
        top1 = float((got.argmax(-1) == ref_logits.argmax(-1)).double().mean())
        tol, on_kl = job["tolerance"], job.get("tolerance_on") == "mean_kl"
        passed = bad == 0 and (kl <= tol if on_kl else (scaled <= tol and kl <= 1e-6))
        out["verify_s"] = time.perf_counter() - t0
        out["verification"] = {
            "passed": passed,
            "reference": "capbench's CPU f32 model, teacher-forced on the same tokens",
            "elements_checked": got.numel(),
            "max_abs_diff": max_abs,
            "max_rel_diff": scaled,
            "scaled_max_diff": scaled,
            "tolerance": tol,
            "nan_or_inf": bad,
            "mean_kl": kl,
            "top1_agreement": top1,
            "note": f"{got.shape[0]} positions through torch's KV cache; pass: "
            + (f"mean KL ≤ {tol:.0e} nats" if on_kl else f"scaled max logit diff ≤ {tol:.0e} and mean KL ≤ 1e-6 nats"),
        }
        if not passed:
            out["status"] = "failed_verification"
            out["status_detail"] = f"torch's logits differ from capbench's reference: mean KL {kl:.3e}, scaled max diff {scaled:.3e}"
            return
        depth, prompt = ref["depth"], ref["prompt"]
        depth_cache = [None] * n_layers
        if depth.shape[1] > 0:
            model.forward(depth, depth_cache)
        gen = prm["gen_tokens"]

        def once():
            cache = list(depth_cache)
            t = time.perf_counter()
            nxt = model.forward(prompt, cache)[:, -1:].argmax(-1)
            prefill_s = time.perf_counter() - t
            itl = []
            for _ in range(gen):
                t = time.perf_counter()
                nxt = model.forward(nxt, cache)[:, -1:].argmax(-1)
                itl.append(time.perf_counter() - t)
            ex = [("ttft_s", prefill_s), ("prefill_s", prefill_s),
                  ("prefill_tokens_per_s", prompt.numel() / prefill_s)]
            ex += [("itl_s", v) for v in itl]
            return (sum(itl) if gen else prefill_s), ex

        sample(job["sampling"], once, out)


def run(job_path, result_path):
    import torch
    from safetensors.torch import load_file

    with open(job_path) as f:
        job = json.load(f)
    threads = (job.get("caps") or {}).get("threads")
    if threads:
        torch.set_num_threads(threads)
    out = {
        "protocol_version": PROTOCOL,
        "status": "ok",
        "status_detail": "",
        "engine": f"torch {torch.__version__}",
        "timer": "wall_clock (torch on the CPU returns with the work done)",
        "threads_used": torch.get_num_threads(),
    }
    files = job.get("inputs") or {}
    kind = job["workload"].split("/")[0]
    if "inputs" not in files or kind not in ("train-step", "decode"):
        out["status"] = "unsupported"
        out["status_detail"] = "the torch worker runs train-step and decode of the dense family's shapes"
    else:
        t0 = time.perf_counter()
        with open(files["inputs"]) as f:
            inputs = json.load(f)
        weights = load_file(files["weights"])
        ref = load_file(files["reference"])
        out["prepare_s"] = time.perf_counter() - t0
        (train_step if kind == "train-step" else decode)(torch, job, inputs, weights, ref, out)
    tmp = result_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    import os

    os.replace(tmp, result_path)
    return 0


def main(argv):
    if argv[1:] == ["--probe"]:
        return probe()
    if len(argv) != 5 or argv[1] != "--job" or argv[3] != "--result":
        print("torch worker: usage: torch_worker.py --job JOB.json --result RESULT.json | --probe", file=sys.stderr)
        return 2
    return run(argv[2], argv[4])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
