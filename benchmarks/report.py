"""Markdown tables from a benchmark JSON: `python -m benchmarks report bench.json`.

The JSON is what `python -m benchmarks --json bench.json` writes; the tables in docs/reference/performance.md
are this script's output, pasted, so no figure there is retyped by hand.
"""
import json
import sys


def tables(d) -> str:
    out = []
    if "step" in d:
        rows = d["step"]
        comps = [k for k in ("fnnet", "hand", "jax", "torch") if k in rows[0]["ms"]]
        ratios = [k for k in ("fnnet", "hand", "torch") if k in rows[0]["ratio"]]
        out.append("| width | " + " | ".join(f"{k} ms" for k in comps) + " | "
                   + " | ".join(f"{k}/jax" for k in ratios) + " |")
        out.append("|---" * (1 + len(comps) + len(ratios)) + "|")
        for r in rows:
            out.append(f"| {r['width']} | " + " | ".join(f"{r['ms'][k]:.3f}" for k in comps) + " | "
                       + " | ".join(f"**{r['ratio'][k]:.3f}**" for k in ratios) + " |")
        out.append("")
        out.append("| width | step GFLOP | fnnet GFLOP/s | jax GFLOP/s | the step's products alone GFLOP/s "
                   "| products' time / fnnet's |")
        out.append("|---|---|---|---|---|---|")
        for r in rows:
            out.append(f"| {r['width']} | {r['flops'] / 1e9:.3f} | {r['gflops']['fnnet']:.1f} | "
                       f"{r['gflops']['jax']:.1f} | {r['matmul_gflops']:.1f} | **{100 * r['of_matmul']:.0f} %** |")
        out.append("")
    if "compile" in d:
        out.append("| layers run by | model | depths | first s | last s | last / first |")
        out.append("|---|---|---|---|---|---|")
        for r in d["compile"]:
            ds, secs = list(r["seconds"]), list(r["seconds"].values())
            out.append(f"| {r['layout']} | {r['model']} | {ds[0]} → {ds[-1]} | {secs[0]:.3f} | "
                       f"{secs[-1]:.3f} | **{r['ratio']:.2f}** |")
        out.append("")
    if "memory" in d:
        comps = list(d["memory"][0]["temp"])
        out.append("| width | " + " | ".join(f"{k} temp MiB" for k in comps) + " | "
                   + " | ".join(f"{k}/jax" for k in d["memory"][0]["ratio"]) + " |")
        out.append("|---" * (1 + len(comps) + len(d["memory"][0]["ratio"])) + "|")
        for r in d["memory"]:
            out.append(f"| {r['width']} | " + " | ".join(f"{v / 2**20:.2f}" for v in r["temp"].values()) + " | "
                       + " | ".join(f"**{v:.3f}**" for v in r["ratio"].values()) + " |")
    return "\n".join(out)


USAGE = "usage: python -m benchmarks report BENCH.json"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in (["-h"], ["--help"]):
        print(USAGE + "\n\n" + __doc__.strip())
        return 0
    if len(argv) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        print(tables(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
