"""Benchmark: fit ProcrustesMap and RidgeMap on 10,000 synthetic anchors at 4096 → 4096.

The size of Llama-3.1-8B → T5-XXL. Each fit runs in a fresh subprocess so that peak memories
do not mix; the data (planted orthogonal map + noise) is drawn in that subprocess before the
clock starts. Prints seconds, peak RSS (whole process: data + fit) and the RSS before the fit,
and how well the planted map was recovered. CPU seconds (user + system of the fit) are the
fairer figure on a shared machine: wall time grows with other processes' load.

    .venv/bin/python benchmarks/bench_maps.py            # full size (≈ 1–2 min on 2 cores)
    .venv/bin/python benchmarks/bench_maps.py --n 2000 --dim 512   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, n: int, dim: int, noise: float, seed: int) -> dict[str, object]:
    """Draw planted data, fit one map, report time, memory and recovery."""
    import torch

    from safesteer.maths.alignment import make_map
    from safesteer.maths.metrics import cosine, mean_cosine

    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    x = torch.randn(n, dim, generator=g)
    y = x @ q.T + noise * torch.randn(n, dim, generator=g)
    held = torch.randn(1000, dim, generator=g)
    rss_before = _rss_mb()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    fitted = make_map(kind).fit(x, y)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - cpu0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    weight = fitted.weight_  # type: ignore[attr-defined]
    return {
        "kind": kind,
        "n_anchors": n,
        "dims": f"{dim}->{dim}",
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "peak_rss_mb": round(peak_mb),
        "rss_before_fit_mb": round(rss_before),
        "weight_cosine_to_planted": round(cosine(weight, q), 5),
        "held_out_mean_cosine": round(mean_cosine(held @ weight.T, held @ q.T), 5),
        "params": {k: v for k, v in fitted.params().items() if k != "kind"},
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--maps", nargs="+", default=["procrustes", "ridge"])
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads per fit (0: torch's default)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        print(json.dumps(child(args.child, args.n, args.dim, args.noise, args.seed)))
        return 0
    print(
        f"bench_maps: synthetic planted data (random orthogonal map + N(0, {args.noise}²) noise), "
        f"{args.n} anchors, {args.dim}->{args.dim}; CPU: {os.cpu_count()} cores, shared with "
        "other processes (timings vary with load)"
    )
    results = []
    for kind in args.maps:
        cmd = [sys.executable, __file__, "--child", kind, "--n", str(args.n)]
        cmd += ["--dim", str(args.dim), "--noise", str(args.noise), "--seed", str(args.seed)]
        cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{kind}: failed\n{proc.stderr}", file=sys.stderr)
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(
            f"  {kind:10s} fit {r['seconds']:7.2f} s wall, {r['cpu_seconds']:7.2f} s CPU   "
            f"peak RSS {r['peak_rss_mb']:6d} MB "
            f"(data alone {r['rss_before_fit_mb']} MB)   cos(W, planted) "
            f"{r['weight_cosine_to_planted']:.5f}   held-out mean cos "
            f"{r['held_out_mean_cosine']:.5f}   threads {r['threads']}   {r['params']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
