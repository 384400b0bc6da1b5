"""gradcheck: cross-validate a VJP three ways, and say where it is wrong.

    report = gradcheck(f, *args)          # report.passed, print(report)
    assert_gradcheck(f, *args)            # AssertionError carrying the report's text

(a) f's VJP (its custom rule, if any) against ``jax.vjp`` of a reference, entry by entry; where
    they disagree, finite differences are the third witness: a reference they contradict (autodiff
    of the plain function is NaN or wrong exactly where the rule was written) is a finding, not a
    failure, and a rule they contradict always fails (table in docs/reference/gradcheck.md, "Verdict");
(b) against finite differences of f in float64 (central + Richardson, or complex step);
(c) structural properties of the rule (shapes/dtypes, linearity, value, zero, JVP vs VJP, stability
    under rounding; jit vs eager with ``eager=True``).
``order=2`` repeats all of it for the VJP itself as a function of the primal inputs
(reverse-over-reverse). The maths of each part is in its module's docstring: (a) vs_reference.py,
(b) vs_fd.py over the finite-difference engine fd.py, (c) structure.py, tolerances tolerance.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import fd as fd_engine
from .batching import VJP_BATCH, batched_vjp, batched_vjp_pair, fd_mesh
from .context import make_context
from .cotangents import make_cotangents, rademacher, scalar_output
from .fd import default_chunk, make_entry_sampler, probe_width
from .problem import Problem, build_problem
from .programs import Programs, cache_key, cached_programs, float64_scope, precision_scope
from .report import SKIP, Comparison, GradCheckReport
from .structure import draws, eager, jvp_program, shapes_and_dtypes, structural, value_program
from .vs_fd import full_fd, probe_fd
from .vs_reference import compare_reference


def gradcheck(
    f,
    *args,
    reference=None,
    reference_vjp=None,
    argnums=None,
    mode: str = "auto",
    fd: str = "central",
    order: int = 1,
    probes: int = 8,
    cotangents: int = 3,
    basis_limit: int = 16,
    chunk_size: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
    max_entries: int = 8,
    kink_checks: int = 1024,
    structure: bool = True,
    eager: bool = False,
    cache: bool = True,
    devices="auto",
) -> GradCheckReport:
    """Check the reverse-mode derivative of ``f`` at ``args``.

    **Arguments**

    - ``f``: any JAX function from pytrees to pytrees (a ``jax.custom_vjp`` or not).
    - ``*args``: the point; pytrees of arrays. Integer/bool leaves are held fixed and listed; complex
      leaves (and outputs) are checked as real pairs in JAX's convention (see fnnet.check.problem).
    - ``reference``: a plain function with f's signature whose ``jax.vjp`` is the oracle. Default:
      ``f.reference`` if present, else ``f.fun`` of a custom_vjp/custom_jvp function.
    - ``reference_vjp``: for a rule that is not a derivative by design (gradient clipping, reversal,
      scaling): ``reference_vjp(args, g)`` returns the cotangents the rule should give (a tuple, one
      per argnum, each shaped like that argument) for the positional ``args`` and the output
      cotangent ``g`` (shaped like f's output). (a) compares the rule with it; (b) (finite
      differences) and the structural checks that assume a derivative (linearity, JVP) are skipped,
      and the report says so.
    - ``argnums``: which positional args to differentiate (int or tuple; default all).
    - ``mode``: ``"auto"`` (entrywise reference comparison + ``probes`` FD probes per leaf with
      bisection) or ``"full"`` (every entry of every leaf by FD, in jit-compiled vmapped chunks).
    - ``fd``: ``"central"`` (Richardson-extrapolated, with kink detection) or ``"complex"`` (complex
      step: exact to rounding, only for real-analytic f).
    - ``order``: 1, or 2 to also check the VJP's own derivative (reverse over reverse).
    - ``probes``: FD probes per leaf in auto mode (a spread-out error escapes all with prob <= 2^-k).
    - ``cotangents``, ``basis_limit``: the output-space directions: all ``M`` basis vectors when
      f's float outputs have ``M <= basis_limit`` entries (the full Jacobian), else ``cotangents``
      random-sign vectors.
    - ``chunk_size``: perturbations per compiled call (default: about 2^22 floats per call).
    - ``rtol``, ``atol``: replace the derived rounding allowance of the rule by ``atol + rtol |ref|``
      (the finite-difference error bar is still added to FD comparisons).
    - ``seed``: all random directions come from ``numpy.random.default_rng(seed)``.
    - ``max_entries``: worst entries shown; ``kink_checks``: failing entries re-examined for kinks.
    - ``structure``: run the structural checks (c).
    - ``eager``: also run the rule once op by op, outside ``jit``, and compare it with the jitted rule
      that every other check uses ("(c) jit agrees with eager": catches Python-side state and rules
      that behave differently under tracing). Off by default: JAX compiles every primitive of an eager
      run on its own, about half of a first call on the corpus of real rules (tests/gradcheck_corpus.py;
      ``python tests/test_gradcheck_corpus.py --first-call --eager``), and no bug there is caught by it
      alone. With ``eager=False`` the report lists the check as skipped.
    - ``cache``: reuse the compiled programs of an earlier check of the same ``f`` at the same shapes
      and fixed values (a weak-keyed cache on ``f``; see :mod:`fnnet.check.programs`). Pass False
      when f reads Python state that changes between calls.

    - ``devices``: full mode splits its perturbations (the vmapped batch axis of the finite
      differences) over these devices with a ``NamedSharding`` on a 1-D mesh, as fnnet.parallel splits
      a batch; ``"auto"`` (default) uses every device of the default backend when there are several,
      None or one device runs on one. The results are those of one device.

    f, its rule and the reference all run under ``jax.default_matmul_precision("highest")`` (the
    caller's setting is restored afterwards): a TF32/bfloat16 matmul pass would otherwise differ from
    the float64 finite differences by ~1e-3 and be reported as a wrong gradient.

    **Returns** a :class:`GradCheckReport`: ``.passed``, ``.comparisons`` (one verdict each),
    ``.worst_entries`` (keypath, index, rule, reference, fd, error, tol), ``str()`` a table.

    **Raises** ``TypeError``/``ValueError`` for bad input: wrong arity, None leaves, non-array outputs,
    no float leaves, a reference whose output structure differs from f's.
    """
    if mode not in ("auto", "full"):
        raise ValueError(f"gradcheck: mode must be 'auto' or 'full', got {mode!r}")
    if fd not in ("central", "complex"):
        raise ValueError(f"gradcheck: fd must be 'central' or 'complex', got {fd!r}")
    if order not in (1, 2):
        raise ValueError(f"gradcheck: order must be 1 or 2, got {order!r}")
    if reference is not None and reference_vjp is not None:
        raise ValueError("gradcheck: pass reference= (a function whose autodiff is the truth) or reference_vjp= "
                         "(the VJP itself), not both")
    __tracebackhide__ = True  # noqa: F841 - pytest: show the caller's frame, not fnnet's
    with precision_scope():
        problem = build_problem(f, args, argnums, reference, reference_vjp)
        if fd == "complex" and any(label.endswith("[re,im]") for label in problem.labels):
            raise ValueError("gradcheck: fd='complex' (complex step) cannot be used on complex inputs; use fd='central'")
        name = getattr(f, "__name__", None) or getattr(getattr(f, "fun", None), "__name__", None) or type(f).__name__
        options = dict(mode=mode, probes=probes, cotangents=cotangents, basis_limit=basis_limit,
                       chunk_size=chunk_size, rtol=rtol, atol=atol, max_entries=max_entries,
                       kink_checks=kink_checks, structure=structure, eager=eager)
        dtypes = sorted({str(x.dtype) for x in problem.x})
        settings = f"mode={mode}, fd={fd}, order={order}, inputs {'/'.join(dtypes)}, {len(problem.x)} leaves, " \
                   f"{sum(int(np.prod(x.shape)) for x in problem.x)} entries, matmul precision highest"
        report = GradCheckReport(name, settings, skipped=list(problem.skipped), notes=list(problem.notes),
                                 max_entries=max_entries)
        key = None
        if cache:
            ref_token = reference if reference is not None else reference_vjp if reference_vjp is not None \
                else getattr(f, "reference", None)
            key = cache_key(args, problem.argnums, problem.diff_positions, fd, ref_token)
            key = None if key is None else (key, devices if devices in (None, "auto") else tuple(devices))
        programs, _ = cached_programs(f, key)
        try:
            options["mesh"] = fd_mesh(devices) if mode == "full" else None
            ctx = _check(problem, fd, seed, report, "", options, programs)
            if order == 2 and ctx is not None:
                second = _second_order(problem, ctx, seed)
                programs2, _ = cached_programs(f, None if key is None else (key, "order 2"))
                try:
                    _check(second, fd, seed + 1, report, "order 2 ", options, programs2)
                finally:
                    programs2.release()
        finally:
            programs.release()
    return report


def assert_gradcheck(f, *args, **options) -> GradCheckReport:
    """:func:`gradcheck`, raising ``AssertionError`` when it fails.

    The message's first line is a one-line summary (what failed, where, with which values), so that
    pytest's short summary shows it; the full report follows.
    """
    __tracebackhide__ = True  # noqa: F841 - pytest hides this frame (and gradcheck's)
    report = gradcheck(f, *args, **options)
    if not report.passed:
        raise AssertionError(report.summary + "\n" + str(report))
    return report


def _override(rtol, atol):
    if rtol is None and atol is None:
        return None
    r, a = float(rtol or 0.0), float(atol or 0.0)
    return lambda expected: a + r * np.abs(np.asarray(expected, np.float64))


def _f0_width(ctx, mode: str, chunk: int) -> int | None:
    """The width of the directional sampler that gives f's float64 outputs (the default mode compiles
    it up front, and on a small problem it evaluates f(x) itself: fd.inline_f0), or None: f is then a
    program of its own."""
    return probe_width(chunk) if mode == "auto" and ctx.inline_f0 else None


def _prefetch(ctx, cots, mode: str, chunk: int, structure: bool) -> None:
    """Trace every program the check will run and start compiling them, as one executable.

    Shapes are those the comparisons use (batches padded to VJP_BATCH cotangents and
    :func:`~fnnet.check.fd.probe_width` directions), so each later call finds its program compiled. The
    programs: at the inputs' precision the rule, its JVP and, for float64 inputs, the rule at
    float32; in float64 f itself (the float32-inside test; on a small problem the sampler gives it,
    see :func:`~fnnet.check.fd.inline_f0`), the rule and the reference, and the finite-difference
    sampler (:meth:`Programs.prefetch_together`).
    """
    problem = ctx.problem

    def sds(shape, dtype):
        return jax.ShapeDtypeStruct(tuple(shape), dtype)

    x = list(problem.x)
    items = [("rule", lambda: batched_vjp(problem.F), (x, [sds((VJP_BATCH, *o.shape), o.dtype) for o in problem.out]), False)]
    if problem.RV is None:  # (a rule checked against a given VJP runs nothing else)
        if structure:  # the JVP-vs-VJP check (c); its tangent has the inputs' dtypes
            items.append(("jvp", lambda: jvp_program(problem.F), (x, [sds(np.shape(xi), xi.dtype) for xi in x]), False))
        if any(e <= float(np.finfo(np.float64).eps) for e in ctx.eps):  # float64 leaves: the rule's float32 rerun
            try:
                dts32 = ctx.out_dtypes32("F")
            except Exception:  # noqa: BLE001 - f cannot run in float32: no rerun (context.rules32)
                dts32 = None
            if dts32 is not None:
                items.append(("rule32", lambda: batched_vjp(problem.F), ([sds(np.shape(xi), np.float32) for xi in x],
                              [sds((VJP_BATCH, *o.shape), dt) for o, dt in zip(problem.out, dts32)]), False))
        x64 = [sds(np.shape(xi), np.float64) for xi in ctx.x64]
        g64 = [sds((VJP_BATCH, *o.shape), np.float64) for o in problem.out]
        if structure:  # the rule's value against f(x) (c)
            items.append(("value64", lambda: value_program(problem.F64), (x64,), True))
        if _f0_width(ctx, mode, chunk) is None:  # (else f's float64 outputs come from the sampler)
            items.append(("f64", lambda: jax.jit(problem.F64), (x64,), True))
        if problem.R64 is not None:
            items.append(("both64", lambda: batched_vjp_pair(problem.F64, problem.R64), (x64, g64), True))
        else:
            items.append(("rule64", lambda: batched_vjp(problem.F64), (x64, g64), True))
        if mode == "auto":  # (full mode uses the directional sampler only to re-examine kinks in (a))
            width = probe_width(chunk)
            dirs = [sds((width, *np.shape(xi)), np.float64) for xi in ctx.x64]
            gw = [sds((width, *o.shape), np.float64) for o in problem.out]
            items.append(("sampler", fd_engine.sampler(ctx), (x64, dirs, gw), True))
        elif ctx.mesh is None:  # (sharded programs are compiled on first use)
            gc = [sds((len(cots.values), *o.shape), np.float64) for o in problem.out]
            for leaf, xi in enumerate(ctx.x64):
                if xi.size:
                    b = max(1, min(chunk, xi.size))
                    items.append((f"entries{leaf}", lambda leaf=leaf: make_entry_sampler(problem.F64, ctx.fd, leaf),
                                  (x64, sds((b,), np.int64), sds((b,), np.float64), gc), True))
    # JAX reports "can't apply forward-mode autodiff to a custom_vjp function" only when lowering
    ctx.programs.prefetch_together(items, probe=("jvp",))


def _check(problem: Problem, fd: str, seed: int, report: GradCheckReport, prefix: str, o: dict,
           programs: Programs):
    """Run (a), (b), (c) on ``problem`` and append their verdicts to ``report``."""
    ctx = make_context(problem, fd, seed, programs)
    ctx.mesh = o.get("mesh")
    cots = make_cotangents(problem, ctx.rng, o["cotangents"], o["basis_limit"])
    override = _override(o["rtol"], o["atol"])
    chunk = default_chunk(ctx, o["chunk_size"])
    _prefetch(ctx, cots, o["mode"], chunk, o["structure"])
    fd_engine.check_degraded(ctx, _f0_width(ctx, o["mode"], chunk))
    # The op-by-op VJP of the jit-vs-eager check (if asked for) runs now, on this thread, while the
    # programs compile.
    srng = np.random.default_rng([seed, 1])
    g1, g2 = draws(problem, srng)
    eager_result = eager(ctx, g1) if o["structure"] and o["eager"] else None

    def add(c: Comparison):
        c.name = prefix + c.name
        report.comparisons.append(c)

    shape_check = shapes_and_dtypes(ctx, cots.values[0])
    if shape_check.failed:
        add(shape_check)
        report.notes.append(f"{prefix}the VJP itself fails, so nothing else could be compared")
        return None

    a, T = compare_reference(ctx, cots, max_entries=o["max_entries"], kink_checks=o["kink_checks"],
                             chunk=chunk, override=override)
    add(a)
    if a.verdict != SKIP:
        how = "every Jacobian entry is compared with its own tolerance" if cots.basis else (
            f"a single wrong Jacobian entry is always seen; cancelling ones escape all {len(cots.values)} "
            f"cotangents with probability <= {0.5 ** len(cots.values):.1e}")
        report.power.append(f"{prefix}(a) {how}")
    try:
        if problem.RV is not None:
            add(Comparison("(b) rule vs finite differences", SKIP,
                           detail="not run: reference_vjp= was given, so the rule is checked against that VJP only "
                                  "(a rule that is not a derivative by design cannot match finite differences)"))
        elif o["mode"] == "full":
            b = full_fd(ctx, cots, chunk=chunk, override=override, reference=T or None, max_entries=o["max_entries"])
            add(b)
            report.power.append(f"{prefix}(b) full mode: every entry compared with its own tolerance")
        else:
            reference_for = ctx.reference64 if problem.R is not None and a.verdict != SKIP else None
            b, power, notes = probe_fd(ctx, probes=o["probes"], chunk=chunk, override=override,
                                       reference_for=reference_for, max_entries=o["max_entries"])
            add(b)
            report.power += [prefix + p for p in power]
            report.notes += [prefix + n for n in notes]
    except Exception as err:  # noqa: BLE001 - f not evaluable in float64 (or complex): say so, go on
        msg = str(err).split("\n")[0]
        how = "complex128 (complex step)" if fd == "complex" else "float64"
        add(Comparison("(b) rule vs finite differences", SKIP,
                       detail=f"f could not be evaluated in {how}: {type(err).__name__}: {msg} "
                              "(finite differences need f to follow its inputs' dtype)"))
    if ctx.degraded:
        for c in report.comparisons:
            if c.name.startswith(prefix + "(b)") and c.verdict != SKIP:
                c.detail += "; degraded: float32-accurate differences (see notes)"
        ctx.notes.append(ctx.degraded)
    if o["structure"]:
        add(shape_check)
        for c in structural(ctx, g1, g2, eager_result, srng, derivative=problem.RV is None,
                                run_eager=o["eager"]):
            add(c)
    report.notes += [prefix + n for n in ctx.notes]
    return ctx


def _second_order(problem: Problem, ctx, seed: int) -> Problem:
    """The VJP as a function of the primal, ``x -> VJP_x(g)``, for a fixed random-sign ``g``.

    Checking it with the same machinery checks the rule's derivative (reverse over reverse): its
    VJP is what ``jax.grad`` of a loss built on the rule's gradient differentiates.
    """
    rng = np.random.default_rng(seed + 12345)
    g = [np.ones(np.shape(o)) for o in problem.out] if scalar_output(problem) else rademacher(problem.out, rng)

    def lift(F, wide: bool):
        if F is None:
            return None

        def H(leaves):
            out = F(leaves)
            gs = [jnp.asarray(np.asarray(gi, np.float64 if wide else o.dtype)) for gi, o in zip(g, out)]
            return list(jax.vjp(F, leaves)[1](gs)[0])

        return H

    # Shapes and dtypes only (traced, not run: a concrete call would compile every primitive of the VJP).
    out = jax.eval_shape(lift(problem.F, False), list(problem.x))
    return Problem(
        F=lift(problem.F, False), F64=lift(problem.F64, True), R=lift(problem.R, False), R64=lift(problem.R64, True),
        x=list(problem.x), labels=list(problem.labels), out=out,
        out_labels=[f"vjp{label[4:]}" if label.startswith("args") else label for label in problem.labels],
        skipped=[], notes=[], reference_name=problem.reference_name,
    )
