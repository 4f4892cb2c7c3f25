#!/usr/bin/env python3
"""capbench against the engines people run, interleaved A B / B A.

Called by compare.sh once the peers are installed. For every pair it runs
the peer and capbench back to back in one window, alternating which goes
first each round, and quotes the per-round ratio capbench / peer: a drift of
the machine between rounds moves both sides of a pair alike and cancels in
the ratio, which a figure from each side measured at different times does
not (the machine this runs on drifts by 15-25 % between minutes).

Pairs (same weights, same thread count):
  decode   llama-bench tg64        vs  decode/gguf/<fmt>/p16g64 on the same file
  prefill  llama-bench pp128       vs  prefill/gguf/<fmt>/p128 on the same file
  train    torch_train.py (eager)  vs  train-step/dense-small/<dtype>

Writes results.json (every sample) and table.md (the ratios with the machine
fingerprint) into --out. It is a benchmark, not a test: nothing here fails
on a low ratio.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# dense-small's shape, as workloads/src/models/config.rs defines it, and its
# default train-step batch (spec.rs: default_train_shape). The PyTorch side
# builds the same llama-style model from these numbers.
DENSE_SMALL = dict(vocab=8192, dim=512, layers=8, heads=8, kv_heads=4,
                   ffn=1408, batch=4, seq=128)


def sh(cmd, **kw):
    """Run a command, echoing it; return stdout (raise on failure)."""
    print("+ " + " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, text=True,
                          stdout=subprocess.PIPE, **kw).stdout


# Versions the peers report about themselves while running.
PEER_VERSIONS = {}


def llama_bench(bench, model, threads, prompt, gen, reps):
    out = sh([bench, "-m", model, "-t", threads, "-p", prompt, "-n", gen,
              "-r", reps, "-o", "json"], stderr=subprocess.DEVNULL)
    rows = json.loads(out)
    if len(rows) != 1:
        raise SystemExit(f"llama-bench: expected one result row, got {len(rows)}")
    PEER_VERSIONS["llama_cpp_build_commit"] = rows[0].get("build_commit", "?")
    return rows[0]["avg_ts"], rows[0]


def capbench(exe, workload, threads, repeat, out_dir, model=None):
    out_dir = Path(out_dir)
    cmd = [exe, "run", "--backend", "cpu", "--workload", workload,
           "--threads", threads, "--repeat", repeat, "--out", out_dir, "-q"]
    if model:
        cmd += ["--model", model]
    sh(cmd)
    case = json.loads((out_dir / "cases.jsonl").read_text().splitlines()[0])
    if case["status"] != "ok":
        raise SystemExit(f"{workload}: capbench case status {case['status']}")
    return case["headline"]["value"], case["headline"]["metric"]


def torch_train(python, script, threads, dtype, steps):
    s = DENSE_SMALL
    out = sh([python, script, "--vocab", s["vocab"], "--dim", s["dim"],
              "--layers", s["layers"], "--heads", s["heads"],
              "--kv-heads", s["kv_heads"], "--ffn", s["ffn"],
              "--batch", s["batch"], "--seq", s["seq"], "--threads", threads,
              "--dtype", dtype, "--steps", steps])
    samples = json.loads(out.strip().splitlines()[-1])["tokens_per_s"]
    return statistics.median(samples), samples


def fingerprint(args):
    fp = {"python": platform.python_version(), "threads": args.threads}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                fp["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines()
                     if l.startswith("flags")).split()
        fp["simd"] = " ".join(f for f in ("avx2", "fma", "f16c", "avx512f",
                                          "avx512_vnni", "avx_vnni",
                                          "avx512_bf16") if f in flags)
        caches = []
        for idx in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
            level = (idx / "level").read_text().strip()
            kind = (idx / "type").read_text().strip()
            size = (idx / "size").read_text().strip()
            caches.append(f"L{level}{'d' if kind == 'Data' else 'i' if kind == 'Instruction' else ''} {size}")
        fp["caches"] = ", ".join(caches)
        fp["logical_cpus"] = os.cpu_count()
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        fp["memory_gib"] = round(int(mem) / 2**20, 1)
    except (OSError, StopIteration) as e:
        fp["fingerprint_error"] = str(e)
    # llama.cpp's threads spin-wait between ops: on a busy machine they lose
    # their time slices and tg64 collapses (measured here at a load of 15 on
    # 2 cores: 9-13 tok/s where a quiet machine gives ~10x that), while
    # rayon's pool degrades gently. The load is recorded so a table taken on
    # a busy machine says so.
    load = os.getloadavg()
    fp["load_avg_1m_at_start"] = round(load[0], 2)
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load[0]:.1f} on {os.cpu_count()} CPUs; "
              "ratios against llama.cpp need a quiet machine", file=sys.stderr)
    fp["capbench"] = sh([args.capbench, "--version"]).strip()
    # torch's version as imported; llama.cpp's build commit is taken from
    # llama-bench's first result row (PEER_VERSIONS).
    if args.python:
        fp["torch"] = sh([args.python, "-c", "import torch; print(torch.__version__)"]).strip()
    try:
        fp["capbench_commit"] = sh(["git", "rev-parse", "--short", "HEAD"]).strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        pass
    return fp


def main():
    # wgpu's Vulkan loader, probed for the machine record, prints an error
    # per probe without a runtime directory (a bare ssh or CI session); the
    # other scripts export one the same way.
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capbench", required=True)
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--python", help="python with torch (skip training when absent)")
    ap.add_argument("--torch-script", default=str(Path(__file__).with_name("torch_train.py")))
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", default="tinyllama-1.1b,llama-3.2-1b")
    ap.add_argument("--formats", default="q4_0,q8_0,f16")
    ap.add_argument("--train-dtypes", default="f32")
    ap.add_argument("--skip", default="", help="comma list of: decode,prefill,train")
    args = ap.parse_args()

    out = Path(args.out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    results = {"fingerprint": fingerprint(args), "pairs": []}
    t0 = time.time()

    def record(row, kind, peer_name, a_fn, b_fn):
        rounds = []
        for r in range(args.rounds):
            # A B in even rounds, B A in odd ones: a drift within a round
            # favours each side equally often.
            if r % 2 == 0:
                peer = a_fn(r)
                ours = b_fn(r)
            else:
                ours = b_fn(r)
                peer = a_fn(r)
            rounds.append({"peer": peer, "capbench": ours, "ratio": ours / peer})
            print(f"  {row} round {r + 1}: {peer_name} {peer:.2f}, capbench {ours:.2f}, "
                  f"ratio {ours / peer:.3f}", file=sys.stderr, flush=True)
        results["pairs"].append({"row": row, "kind": kind, "peer": peer_name,
                                 "rounds": rounds})
        (out / "results.json").write_text(json.dumps(results, indent=1))

    for model in filter(None, args.models.split(",")):
        for fmt in filter(None, args.formats.split(",")):
            gguf = out / "models" / f"{model}-{fmt}.gguf"
            if not gguf.exists():
                sh([args.capbench, "export-gguf", "--model", model, "--format", fmt,
                    "--out", gguf])
            tag = f"{model}-{fmt}"
            if "decode" not in skip:
                record(f"decode tg64, {model}, {fmt}", "decode", "llama.cpp",
                       lambda r: llama_bench(args.llama_bench, gguf, args.threads, 0, 64, 3)[0],
                       lambda r: capbench(args.capbench, f"decode/gguf/{fmt}/p16g64",
                                          args.threads, 2, out / "runs" / f"decode-{tag}-{r}",
                                          gguf)[0])
            if "prefill" not in skip:
                record(f"prefill pp128, {model}, {fmt}", "prefill", "llama.cpp",
                       lambda r: llama_bench(args.llama_bench, gguf, args.threads, 128, 0, 3)[0],
                       lambda r: capbench(args.capbench, f"prefill/gguf/{fmt}/p128",
                                          args.threads, 2, out / "runs" / f"prefill-{tag}-{r}",
                                          gguf)[0])
    if "train" not in skip:
        if not args.python:
            print("train: no --python with torch given; skipped", file=sys.stderr)
        else:
            for dt in filter(None, args.train_dtypes.split(",")):
                record(f"train step, dense-small, {dt} (B=4, T=128, AdamW)", "train",
                       "PyTorch eager",
                       lambda r: torch_train(args.python, args.torch_script, args.threads,
                                             dt, 8)[0],
                       lambda r: capbench(args.capbench, f"train-step/dense-small/{dt}",
                                          args.threads, 2, out / "runs" / f"train-{dt}-{r}")[0])
    results["fingerprint"].update(PEER_VERSIONS)
    results["wall_s"] = round(time.time() - t0, 1)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    write_table(out, results)


def write_table(out, results):
    fp = results["fingerprint"]
    lines = ["# capbench against llama.cpp and PyTorch, interleaved", "",
             "| machine | |", "|---|---|"]
    for k, v in fp.items():
        lines.append(f"| {k} | {v} |")
    lines += ["", f"Each row: {len(results['pairs'][0]['rounds']) if results['pairs'] else 0} "
              "rounds, peer and capbench back to back in each (order alternating); "
              "tokens/s; ratio = capbench / peer per round.", "",
              "| work | peer | peer tok/s | capbench tok/s | ratio per round | ratio (geo. mean) |",
              "|---|---|---|---|---|---|"]
    for p in results["pairs"]:
        rs = p["rounds"]
        peer = ", ".join(f"{x['peer']:.1f}" for x in rs)
        ours = ", ".join(f"{x['capbench']:.1f}" for x in rs)
        ratios = [x["ratio"] for x in rs]
        geo = statistics.geometric_mean(ratios)
        lines.append(f"| {p['row']} | {p['peer']} | {peer} | {ours} | "
                     f"{', '.join(f'{x:.2f}' for x in ratios)} | **{geo:.2f}** |")
    lines += ["", f"Wall time: {results.get('wall_s', '?')} s.", ""]
    (out / "table.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
