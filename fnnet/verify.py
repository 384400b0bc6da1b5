"""``python -m fnnet verify``: every registered primitive's hand rules, checked two ways, in float64.

For each primitive and hyperparameter variant, on its built-in default inputs, the full Jacobian is
built from fnnet's rules — rows from the hand VJP (``jax.jacrev`` of the public function), columns
from its forward mode (``jax.jacfwd`` of the same function) — and
compared, normwise, with

* autodiff: ``jax.jacrev`` of the plain reference, and
* central differences, the lecture's (f(x+h) − f(x−h)) / 2h, Richardson-extrapolated with h/2, one
  column per input entry, with h = ε^{1/3}·max(1, |x|) (fnnet's one finite-difference engine,
  :func:`fnnet.check.fd.jacobian_samples`).

Pass: autodiff error ≤ 64ε (two exact formulas, each a few dozen roundings: see tests/test_primitives)
and finite-difference error ≤ 1e-7 (plain central differences: truncation h²|f'''|/6 plus round-off
ε|f|/h, ≈ 1e-9, with a factor 100 of margin; Richardson removes the truncation term and triples
the round-off, ≈ 1e-10).

With ``--gradcheck`` (``gradcheck=True``), the full checker, :func:`fnnet.gradcheck`, also runs on the
same inputs in float32 (the training dtype; its reference and finite differences are evaluated in
float64, the truth at float32's scale) with ``mode="full"``: every entry against ``jax.vjp`` of the
reference and against finite differences, plus the structural checks of the rule. Its column shows the
worst error/tolerance of (a) and (b) and the structural verdict (c); a row passes only if all of it
passes. It is a self-test of the checker on every primitive and takes about three times as long as the
table (the checker traces five to seven programs per row), so it is not the default.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check import fd, programs

AUTODIFF_TOL = 64 * float(np.finfo(np.float64).eps)
FD_TOL = 1e-7


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    err_autodiff: float
    err_fd: float
    gradcheck: Any = None  # the float32 GradCheckReport (None when not run)

    @property
    def passed(self) -> bool:
        ok = self.err_autodiff <= AUTODIFF_TOL and self.err_fd <= FD_TOL
        return ok and (self.gradcheck is None or self.gradcheck.passed)


def _flat(f, args):
    """f as a function of all its arguments flattened into one vector, its outputs into another."""
    shapes = [a.shape for a in args]
    ends = np.cumsum([int(np.prod(sh)) for sh in shapes])[:-1]

    def g(v):
        a = [p.reshape(sh) for p, sh in zip(jnp.split(v, ends), shapes)]
        return jnp.concatenate([jnp.ravel(o) for o in jax.tree.leaves(f(*a))])

    return g


def _normwise(a, b):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b))) / scale


# verify compiles each of its programs once and runs it once, on inputs of a few dozen entries: the
# compile is nearly all of the time, and LLVM's optimization passes and XLA:CPU's fusion emitters (an
# MLIR pipeline per fusion) are most of the compile. Off, the classic elemental emitter generates the
# same arithmetic (XLA's CPU backend does no fast-math reassociation) in well under half the compile
# time; results can differ in the last bits where code is generated differently, far below
# every tolerance of the table (verify's Jacobians agreed within 2.5e-12 normwise, in the central
# differences' round-off, when measured).
COMPILER_OPTIONS = programs.RUN_ONCE_OPTIONS  # the checker's own run-once options (fnnet/check/programs.py)


def _compile_once(f, *args):
    """Run ``f(*args)`` as one compiled program, without the optimizations a hot loop would want."""
    return programs.compile_with(jax.jit(f).lower(*args), programs.run_once_options())(*args)


def check_primitive(prim: Any, static: dict[str, Any], key: jax.Array, gradcheck: bool = False) -> Row:
    args = tuple(a.astype(jnp.float64) for a in prim.sample_inputs(key, jnp.float64, **static))
    fn = lambda *a: prim.fn(*a, **static)  # noqa: E731
    fwd = fn  # the same function: forward mode (jacfwd) and reverse mode (jacrev) both work on it
    ref = lambda *a: prim.reference(*a, **static)  # noqa: E731

    def jacobians(v, h):
        # the four Jacobians with respect to every argument at once, in one program: one compile per
        # row (the finite differences as samples, turned into the Jacobian below)
        return (
            jax.jacrev(_flat(fn, args))(v),
            jax.jacfwd(_flat(fwd, args))(v),
            jax.jacrev(_flat(ref, args))(v),
            fd.jacobian_samples(_flat(fn, args), v, h),
        )

    v = np.concatenate([np.asarray(a).ravel() for a in args])  # (numpy: no small program compiled per shape)
    h = fd.step_sizes(v, jnp.float64)
    j_vjp, j_jvp, j_ref, (samples, magnitudes) = _compile_once(jacobians, jax.device_put(v), jax.device_put(h))
    j_fd = fd.jacobian_estimate(samples, magnitudes, h).value
    err_ad = err_fd = 0.0
    start = 0
    for a in args:  # each argument's block of columns on its own scale, as a Jacobian of that argument
        cols = slice(start, start + a.size)
        start += a.size
        vjp, jvp, ref_, fd_ = (np.asarray(j)[:, cols] for j in (j_vjp, j_jvp, j_ref, j_fd))
        err_ad = max(err_ad, _normwise(vjp, ref_), _normwise(jvp, ref_))
        err_fd = max(err_fd, _normwise(vjp, fd_), _normwise(jvp, fd_))
    label = _label(prim, static)
    report = None
    if gradcheck:
        from fnnet.check import gradcheck as run_gradcheck

        args32 = tuple(a.astype(jnp.float32) for a in args)
        # (the checker compiles its programs with the same run-once options, its default on XLA:CPU)
        report = run_gradcheck(
            functools.partial(prim.fn, **static), *args32,
            reference=functools.partial(prim.reference, **static), mode="full",
        )
    return Row(label, err_ad, err_fd, report)


def _label(prim, static) -> str:
    return prim.name + "".join(f" {k}={_short(v)}" for k, v in static.items() if len(prim.variants) > 1)


def _short(v) -> str:
    """A variant's value for the table: arrays given as nested tuples (labels, masks) as dtype[shape]."""
    if isinstance(v, (tuple, list)) and len(repr(v)) > 16:
        a = np.asarray(v)
        return f"{a.dtype.name}[{','.join(map(str, a.shape))}]"
    return str(v)


def _selected(names=None):
    """The (primitive, static variant) pairs to check, in registry order."""
    import fnnet  # noqa: F401  (registers everything)
    from fnnet.primitive import registry

    prims = registry()
    if names:
        unknown = sorted(set(names) - set(prims))
        if unknown:
            raise ValueError(f"fnnet.verify: argument 'names' must name registered primitives; got unknown "
                             f"{', '.join(unknown)} (known: {', '.join(sorted(prims))})")
        prims = {n: prims[n] for n in names}
    return [(p, dict(v)) for p in prims.values() for v in p.variants]


def iter_verify(
    names: Sequence[str] | None = None, seed: int = 0, gradcheck: bool = False, workers: int | None = None
) -> Iterator[Row]:
    """Like :func:`verify`, one row at a time, as each finishes."""
    if not jax.config.jax_enable_x64:  # type: ignore[attr-defined]  # (the current value, scopes included)
        raise RuntimeError("verify runs in float64: enable jax_enable_x64 first")
    key = jax.random.key(seed)
    selected = _selected(names)
    if workers is None:
        workers = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if workers <= 1:
        for prim, static in selected:
            yield check_primitive(prim, static, key, gradcheck)
        return
    # XLA compiles with the GIL released: rows compile side by side, and are yielded in order.
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        yield from pool.map(lambda ps: check_primitive(ps[0], ps[1], key, gradcheck), selected)


def verify(names: Sequence[str] | None = None, seed: int = 0, gradcheck: bool = False) -> list[Row]:
    """Check every registered primitive (or those named); needs float64 (``jax_enable_x64``).
    ``gradcheck=True`` adds the full checker's float32 verdict to each row."""
    return list(iter_verify(names, seed, gradcheck))


def _gradcheck_cell(report) -> str:
    if report is None:
        return "-"
    parts = []
    for prefix in ("(a)", "(b)"):
        c = next((c for c in report.comparisons if c.name.startswith(prefix)), None)
        parts.append("skip" if c is None or c.verdict == "skipped" else f"{c.worst:.2f}")
    structural = [c for c in report.comparisons if c.name.startswith("(c)")]
    parts.append("FAIL" if any(c.failed for c in structural) else "ok")
    return " ".join(parts)


def format_header(width: int, gradcheck: bool = False) -> str:
    """The two header lines; the gradcheck column only when the rows have it."""
    names = f"{'primitive':<{width}}  {'vs autodiff':>12}  {'vs central FD':>13}"
    tols = f"{'':<{width}}  {'(tol %.1e)' % AUTODIFF_TOL:>12}  {'(tol %.0e)' % FD_TOL:>13}"
    if gradcheck:
        names, tols = f"{names}  {'gradcheck f32':>15}", f"{tols}  {'(a) (b) (c)':>15}"
    return f"{names}  verdict\n{tols}"


def format_row(r: Row, width: int) -> str:
    cell = "" if r.gradcheck is None else f"  {_gradcheck_cell(r.gradcheck):>15}"
    return f"{r.name:<{width}}  {r.err_autodiff:12.2e}  {r.err_fd:13.2e}{cell}  {'PASS' if r.passed else 'FAIL'}"


def format_summary(rows: Sequence[Row], seconds: float | None = None) -> str:
    """The closing count, then the full report of every row whose gradcheck failed."""
    n_fail = sum(not r.passed for r in rows)
    took = "" if seconds is None else f" in {seconds:.0f} s"
    lines = [f"{len(rows) - n_fail} passed, {n_fail} failed{took}"]
    for r in rows:
        if r.gradcheck is not None and not r.gradcheck.passed:
            lines += ["", str(r.gradcheck)]
    return "\n".join(lines)


def verdict(rows: Sequence[Row]) -> str:
    """One line: what the run established, or which rows failed."""
    failed = [r.name for r in rows if not r.passed]
    if not failed:
        return f"verify: OK, all {len(rows)} hand-written VJP/JVP rules agree with autodiff and finite differences"
    return f"verify: FAILED, {len(failed)} of {len(rows)} rows: {', '.join(failed)}"


def format_table(rows: Sequence[Row]) -> str:
    width = max(len(r.name) for r in rows)
    header = format_header(width, any(r.gradcheck is not None for r in rows))
    return "\n".join([header, *(format_row(r, width) for r in rows), format_summary(rows)])


def usable_xla_flags(flags: Sequence[str]) -> list[str]:
    """Those of ``flags`` (``--name=value``) that this jaxlib's XLA accepts in ``XLA_FLAGS``, tried in
    a subprocess on the CPU backend (an unknown flag aborts the process that starts a backend, so it
    cannot be tried here): all of them if they start a backend together, else each one that does."""
    def starts(trial):
        env = dict(os.environ, XLA_FLAGS=" ".join(trial), JAX_PLATFORMS="cpu")
        code = "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode == 0

    flags = list(flags)
    if not flags or starts(flags):
        return flags
    return [f for f in flags if starts([f])] if len(flags) > 1 else []


def _fast_compiles() -> None:
    """Compile the checker's programs and eager operations without LLVM's optimizations too (see
    COMPILER_OPTIONS), where this XLA knows the switches.

    XLA reads ``XLA_FLAGS`` once, when the first computation starts its backend; later it has no
    effect (the programs verify compiles itself still get the options, per compilation).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    extra = [f"--{k}={str(v).lower()}" for k, v in COMPILER_OPTIONS.items() if k not in flags]
    extra = usable_xla_flags(extra)
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fnnet verify", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="primitives to check (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--gradcheck", action="store_true",
        help="also run the full checker (fnnet.gradcheck, float32, mode='full') on every row: about 3x the time",
    )
    # the default since the table alone became `make run`; still accepted, so older commands keep working
    parser.add_argument("--no-gradcheck", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.gradcheck and args.no_gradcheck:
        parser.error("--gradcheck and --no-gradcheck contradict each other")
    if args.gradcheck:  # the checker's eager operations: only they read XLA_FLAGS
        _fast_compiles()
    jax.config.update("jax_enable_x64", True)
    selected = _selected(args.names)
    width = max(len(_label(p, s)) for p, s in selected)
    print(f"checking {len(selected)} primitives and variants; one row as each finishes", flush=True)
    print(format_header(width, args.gradcheck), flush=True)
    start = time.perf_counter()
    rows = []
    for row in iter_verify(args.names, args.seed, gradcheck=args.gradcheck):
        rows.append(row)
        print(format_row(row, width), flush=True)
    print(format_summary(rows, time.perf_counter() - start))
    print(verdict(rows))
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
