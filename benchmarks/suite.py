"""The benchmark suite, ``python -m benchmarks`` (``make bench``): is a hand-written backward pass as
fast and as lean as XLA's own autodiff?

Runs the quick version of benchmarks 1-5 (a few minutes on two CPU cores; on a terminal a progress
line says what runs) and prints each figure with the command that reproduces it alone, then a one-line
summary; ``--full`` takes more rounds. Every comparison is measured side by side in one process
(:mod:`benchmarks._timing`).

1, 2. ``step``: step time and roofline (:mod:`benchmarks.step`);
3. ``compile``: compile time against depth (:mod:`benchmarks.compile_time`);
4. ``memory``: temporary bytes of the compiled steps (:mod:`benchmarks.memory`);
5. ``gradcheck``: entries per second of fnnet.gradcheck (:mod:`benchmarks.gradcheck`).
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import jax

from benchmarks import gradcheck
from benchmarks._mlp import BATCH, WIDTHS
from benchmarks._timing import Progress
from benchmarks.compile_time import bench_compile
from benchmarks.memory import bench_memory
from benchmarks.step import STEP_LEGEND, bench_step

CMD = "python -m benchmarks"


def summary(results: dict, seconds: float) -> str:
    """One line: what the run found, section by section."""
    parts = []
    step = results.get("step")
    if step:
        ratios = [r["ratio"]["fnnet"] for r in step]
        parts.append(f"fnnet step {min(ratios):.2f}-{max(ratios):.2f}x jax.grad's time "
                     f"(w={step[0]['width']}..{step[-1]['width']})")
    comp = results.get("compile")
    if comp:
        scan = [r for r in comp if r["layout"] == "scan" and r["model"] == "fnnet"]
        if scan:
            d = list(scan[0]["seconds"])
            parts.append(f"compile depth {d[-1]}/depth {d[0]} {scan[0]['ratio']:.2f}x with lax.scan")
    mem = results.get("memory")
    if mem:
        ratios = [r["ratio"]["fnnet"] for r in mem if r["ratio"].get("fnnet") is not None]
        if ratios:
            parts.append(f"memory fnnet/jax {min(ratios):.2f}-{max(ratios):.2f}")
    gc = results.get("gradcheck")
    if gc:
        full = max((r for r in gc if r["mode"] == "full"), key=lambda r: r["n"], default=None)
        if full:
            parts.append(f"gradcheck full N={full['n']} {full['n'] / full['same_s']:.0f} entries/s")
    return f"bench done in {seconds:.0f} s: " + ("; ".join(parts) if parts else "nothing run")


BENCHES = ("step", "compile", "memory", "gradcheck")


def _ints(s: str) -> tuple[int, ...]:
    """``"128,512"`` -> (128, 512), for ``--widths`` and ``--depths``."""
    try:
        values = tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 128,512; got {s!r}")
    return values


def main(argv=None) -> int:
    """``python -m benchmarks [--full] [--only step,compile,memory,gradcheck] [--widths 128,512,2048] ...``"""
    p = argparse.ArgumentParser(prog=CMD, description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the default: 7 rounds, 3 compile repeats")
    p.add_argument("--full", action="store_true", help="more rounds and repeats (slower, tighter medians)")
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    p.add_argument("--only", default=",".join(BENCHES), help=f"comma list of {', '.join(BENCHES)}")
    p.add_argument("--widths", type=_ints, default=WIDTHS, help="hidden widths of the step MLP")
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--rounds", type=int, default=None, help="timing rounds (quick 7, full 21)")
    p.add_argument("--depths", type=_ints, default=(4, 64), help="depths of the compile-time benchmark")
    p.add_argument("--deep-width", type=int, default=128, help="width of the compile-time MLP")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    p.add_argument("--no-unrolled", action="store_true", help="skip the unrolled contrast in compile")
    p.add_argument("--unrolled-depths", type=_ints, default=None,
                   help="depths of the unrolled contrast (quick: 4,16; full: as --depths)")
    args = p.parse_args(argv)
    only = [b for b in args.only.split(",") if b]
    bad = [b for b in only if b not in BENCHES]
    if bad:
        p.error(f"unknown benchmark(s) {bad}; choose from {', '.join(BENCHES)}")
    rounds = args.rounds or (21 if args.full else 7)
    repeats = 5 if args.full else 3
    widths = ",".join(map(str, args.widths))

    print(f"fnnet benchmarks: jax {jax.__version__}, {jax.devices()[0].platform} × {jax.device_count()}, "
          f"float32, batch {args.batch}, {'full' if args.full else 'quick'} ({rounds} rounds); "
          f"each section prints the command that runs it alone", flush=True)
    progress = Progress()
    start = time.perf_counter()
    results: dict[str, Any] = {}
    if "step" in only:
        print(f"\n[1, 2] training step 784-w-w-w-10, relu, softmax cross-entropy, one row per width w\n"
              f"{STEP_LEGEND}\n  $ {CMD} step --widths {widths} --batch {args.batch} --rounds {rounds}",
              flush=True)
        results["step"] = bench_step(args.widths, args.batch, rounds, torch=not args.no_torch,
                                     out=progress.out, progress=progress)
        try:
            import torch  # noqa: F401
        except ImportError:
            progress.out("  (torch not installed: PyTorch's step left out; it is not a dependency of fnnet)")
    if "compile" in only:
        depths = ",".join(map(str, args.depths))
        unrolled_depths = args.unrolled_depths or (args.depths if args.full else (4, 16))
        ud = ",".join(map(str, unrolled_depths))
        print(f"\n[3] compile time (trace + lower + XLA compile) of a deep {args.deep_width}-wide MLP step, "
              f"median of {repeats}: with lax.scan it should not grow with depth; unrolled, it does\n"
              f"  $ {CMD} compile --depths {depths} --unrolled-depths {ud} "
              f"--deep-width {args.deep_width}{' --full' if args.full else ''}", flush=True)
        results["compile"] = bench_compile(
            args.depths, args.deep_width, repeats=repeats, unrolled=not args.no_unrolled,
            unrolled_depths=unrolled_depths, out=progress.out, progress=progress,
        )
    if "memory" in only:
        print(f"\n[4] temporary bytes of the compiled step (memory_analysis); X/jax below 1 = leaner than jax.grad\n"
              f"  $ {CMD} memory --widths {widths} --batch {args.batch}", flush=True)
        progress("memory: compiling the steps")
        results["memory"] = bench_memory(args.widths, args.batch, out=progress.out)
    if "gradcheck" in only:
        print(f"\n[5] gradcheck throughput, custom-VJP sum(tanh(x)^2) float32; fresh f = programs compiled, "
              f"same f = cached; medians of {repeats} interleaved rounds\n  $ {CMD} gradcheck --repeats {repeats}",
              flush=True)
        results["gradcheck"] = gradcheck.throughput(rounds=repeats, out=progress.out, progress=progress)
    progress.clear()
    print("\n" + summary(results, time.perf_counter() - start))
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"jax": jax.__version__, "platform": jax.devices()[0].platform,
                       "rounds": rounds, "batch": args.batch, **results}, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0
