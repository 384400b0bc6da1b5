"""Benchmark 4, memory: XLA's temporary bytes of each competitor's compiled training step
(``jax.jit(step).lower(...).compile().memory_analysis()``), the steps of the step-time benchmark.

    python -m benchmarks memory [--widths 128,512,2048] [--batch 256]
"""
from __future__ import annotations

import jax

from benchmarks._mlp import BATCH, WIDTHS, make_steps, mlp_sizes, problem


def temp_bytes(step, args) -> int | None:
    """XLA's temporary-buffer bytes of the compiled step (None where the backend does not say)."""
    ma = jax.jit(step).lower(*args).compile().memory_analysis()
    if ma is None:
        return None
    return int(ma.temp_size_in_bytes)


def bench_memory(widths=WIDTHS, batch=BATCH, out=print) -> list[dict]:
    """Temporary bytes of each competitor's compiled step, one row per width."""
    rows = []
    for w in widths:
        args = problem(mlp_sizes(w), batch)
        row = {"width": w, "temp": {k: temp_bytes(s, args) for k, s in make_steps().items()}}
        j = row["temp"]["jax"]
        row["ratio"] = {k: (v / j if (v is not None and j) else None) for k, v in row["temp"].items() if k != "jax"}
        rows.append(row)
        mib = "  ".join(f"{k} {v / 2**20:8.2f} MiB" for k, v in row["temp"].items() if v is not None)
        rat = "  ".join(f"{k}/jax {v:.3f}" for k, v in row["ratio"].items() if v is not None)
        out(f"  w={w:5d}  {mib}  {rat}")
    return rows
