"""Benchmark: ProcrustesMap and RidgeMap fits on 10,000 anchors at 4096 → 4096, ours vs previous.

The size of Llama-3.1-8B → T5-XXL. Each fit runs in a fresh subprocess so that peak memories do
not mix; the data (planted orthogonal map + noise, synthetic) is drawn in that subprocess before
the clock starts. The baseline is the implementation before the speed work
(``tests/previous_maps.py``, a frozen copy), run on the same data in the same run, alternating
with ours. Prints wall and CPU seconds (CPU is the fairer figure on a shared machine), peak RSS
(whole process: data + fit), the agreement of the two weights and the recovery of the planted
map; then one FIGURE line per figure (ratio ours / previous).

    python benchmarks/bench_maps.py            # 10,000 anchors, 4096 → 4096 (several minutes)
    python benchmarks/bench_maps.py --quick    # 3,000 anchors, 1024 → 1024
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from _figures import figure  # noqa: E402

MAPS = ("procrustes", "ridge")


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, impl: str, n: int, dim: int, noise: float, seed: int, out: str) -> dict:
    """Draw planted data, fit one map, report time, memory and recovery; save the weight."""
    import torch
    from safetensors.torch import save_file

    from safesteer.maths.alignment import make_map
    from safesteer.maths.metrics import cosine, mean_cosine

    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    x = torch.randn(n, dim, generator=g)
    y = x @ q.T + noise * torch.randn(n, dim, generator=g)
    held = torch.randn(1000, dim, generator=g)
    if impl == "previous":
        import previous_maps

        cls = {
            "procrustes": previous_maps.PreviousProcrustesMap,
            "ridge": previous_maps.PreviousRidgeMap,
        }[kind]
        fitted_map = cls()
    else:
        fitted_map = make_map(kind)
    rss_before = _rss_mb()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    fitted = fitted_map.fit(x, y)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - cpu0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    weight = fitted.weight_  # type: ignore[attr-defined]
    save_file({"weight": weight.contiguous()}, out)
    return {
        "kind": kind,
        "impl": impl,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "peak_rss_mb": round(peak_mb),
        "rss_before_fit_mb": round(rss_before),
        "weight_cosine_to_planted": round(cosine(weight, q), 5),
        "held_out_mean_cosine": round(mean_cosine(held @ weight.T, held @ q.T), 5),
        "params": {k: v for k, v in fitted.params().items() if k != "kind"},
        "threads": torch.get_num_threads(),
    }


def run_child(args: argparse.Namespace, kind: str, impl: str, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--impl", impl, "--out", str(out)]
    cmd += ["--n", str(args.n), "--dim", str(args.dim), "--noise", str(args.noise)]
    cmd += ["--seed", str(args.seed), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind}/{impl}: failed\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 anchors at 1024 dims")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--dim", type=int, default=None)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="fits per implementation")
    parser.add_argument("--maps", nargs="+", default=list(MAPS), choices=MAPS)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per fit (default 1: on a shared 2-core box two threads spin-wait "
        "on each other and run 2–20× slower; 0: torch's default)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="ours", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.n = args.n or (3000 if args.quick else 10_000)
    args.dim = args.dim or (1024 if args.quick else 4096)
    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        result = child(args.child, args.impl, args.n, args.dim, args.noise, args.seed, args.out)
        print(json.dumps(result))
        return 0
    print(
        f"bench_maps: synthetic planted data (random orthogonal map + N(0, {args.noise}²) noise), "
        f"{args.n} anchors, {args.dim}->{args.dim}; CPU: {os.cpu_count()} cores, shared with "
        "other processes (timings vary with load); baseline = the maps before the speed work "
        "(tests/previous_maps.py), same data, same run, alternating"
    )
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.maps:
            runs: dict[str, list[dict]] = {"previous": [], "ours": []}
            for rep in range(args.repeats):
                for impl in ("previous", "ours") if rep % 2 == 0 else ("ours", "previous"):
                    r = run_child(args, kind, impl, Path(tmp) / f"{kind}-{impl}.safetensors")
                    runs[impl].append(r)
                    print(
                        f"  {kind:10s} {impl:8s} fit {r['seconds']:7.2f} s wall, "
                        f"{r['cpu_seconds']:7.2f} s CPU   peak RSS {r['peak_rss_mb']:6d} MB "
                        f"(data alone {r['rss_before_fit_mb']} MB)   cos(W, planted) "
                        f"{r['weight_cosine_to_planted']:.5f}   held-out mean cos "
                        f"{r['held_out_mean_cosine']:.5f}   threads {r['threads']}   "
                        f"{r['params']}",
                        flush=True,
                    )
            w_prev = load_file(str(Path(tmp) / f"{kind}-previous.safetensors"))["weight"]
            w_ours = load_file(str(Path(tmp) / f"{kind}-ours.safetensors"))["weight"]
            diff = float((w_prev - w_ours).abs().max() / w_prev.abs().max())
            print(f"  {kind}: max |W_ours − W_previous| / max |W_previous| = {diff:.2e}")
            ours = {k: min(r[k] for r in runs["ours"]) for k in ("seconds", "cpu_seconds")}
            prev = {k: min(r[k] for r in runs["previous"]) for k in ("seconds", "cpu_seconds")}
            peak_o = max(r["peak_rss_mb"] for r in runs["ours"])
            peak_p = max(r["peak_rss_mb"] for r in runs["previous"])
            size = f"{args.n} anchors {args.dim}->{args.dim}"
            full = args.n >= 10_000 and args.dim >= 4096
            figure(
                f"maps: {kind} fit wall ({size})",
                ours["seconds"],
                prev["seconds"],
                "s",
                max_ours=10.0 if full else None,
                max_ratio=1.0,
                baseline_is="previous implementation",
            )
            figure(
                f"maps: {kind} fit CPU ({size})",
                ours["cpu_seconds"],
                prev["cpu_seconds"],
                "s",
                max_ratio=1.0,
                baseline_is="previous implementation",
            )
            figure(
                f"maps: {kind} peak RSS ({size})",
                peak_o / 1024,
                peak_p / 1024,
                "GB",
                max_ours=3.0 if full else None,
                baseline_is="previous implementation",
                note=f"weights agree to {diff:.1e} (relative max abs)",
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
