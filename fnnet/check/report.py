"""The gradient-check report: one verdict per comparison, the worst entries, notes, power.

Also the few helpers every comparison uses to name what it reports: a flat index as a multi-index
(:func:`unravel`, :func:`ravel`), an index as text (:func:`index_text`), a value with NaN and inf
named (:func:`show`), and one row per input entry (:func:`once_per_entry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PASS, FAIL, SKIP = "pass", "FAIL", "skipped"


def unravel(i: int, shape) -> tuple:
    """The multi-index of flat index ``i`` in an array of ``shape`` (``()`` for a scalar)."""
    if not shape:
        return ()
    return tuple(int(k) for k in np.unravel_index(i, shape))


def ravel(index: tuple, shape) -> int:
    """The flat index of multi-index ``index`` in an array of ``shape`` (0 for a scalar)."""
    if not shape:
        return 0
    return int(np.ravel_multi_index(index, shape))


def index_text(index: tuple) -> str:
    """``[i, j]``, or nothing for a scalar's empty index."""
    return f"[{', '.join(str(int(i)) for i in index)}]" if index else ""


def show(x) -> str:
    """A value for a message: ``-`` when not computed, ``NaN``/``+inf``/``-inf`` named, else 6 digits."""
    if x is None:
        return "-"
    if np.isnan(x):
        return "NaN"
    if np.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"{x:.6g}"


def once_per_entry(entries: list) -> list:
    """One row per input entry (its first row: callers pass entries worst first), with how many
    cotangents showed it."""
    best, count = {}, {}
    for e in entries:
        key = (e.keypath, e.index)
        count[key] = count.get(key, 0) + 1
        if key not in best:
            best[key] = e
    out = []
    for key, e in best.items():
        if count[key] > 1:
            e.cotangent = f"{e.cotangent} (+{count[key] - 1} more)"
        out.append(e)
    return out


@dataclass
class Entry:
    """One compared entry: leaf keypath and multi-index, the three values, error and tolerance.

    ``ratio = error / tol``; the entry passes when ``ratio <= 1``. Missing values are NaN.
    """

    keypath: str
    index: tuple
    cotangent: str
    rule: float | None
    reference: float | None = None  # None: not computed (NaN means the reference *is* NaN)
    fd: float | None = None
    error: float = float("nan")
    tol: float = float("nan")
    note: str = ""
    x: float | None = None  # the input's value at this entry
    accepted: bool = False  # passed after re-examination (kink, a reference contradicted by FD, or rounding)

    @property
    def ratio(self) -> float:
        """``error / tol``; NaN anywhere counts as ``inf`` (a failure, never a pass)."""
        if self.accepted:
            return 0.0
        if np.isnan(self.error) or np.isnan(self.tol):
            return float("inf")
        if self.tol > 0:
            return self.error / self.tol
        return float("inf") if self.error > 0 else 0.0

    @property
    def where(self) -> str:
        """The entry as ``keypath[i, j]`` (the keypath alone for a scalar leaf)."""
        return self.keypath + index_text(self.index)


@dataclass
class Comparison:
    """The verdict of one comparison. ``worst`` = max error/tol over everything compared."""

    name: str
    verdict: str
    worst: float = 0.0
    detail: str = ""
    entries: list = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL


@dataclass
class GradCheckReport:
    """Result of :func:`fnnet.check.gradcheck`; ``str(report)`` is the readable table."""

    function: str
    settings: str
    comparisons: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    power: list = field(default_factory=list)
    max_entries: int = 8

    @property
    def passed(self) -> bool:
        ran = [c for c in self.comparisons if c.verdict != SKIP]
        return bool(ran) and not any(c.failed for c in self.comparisons)

    def __bool__(self) -> bool:
        return self.passed

    def comparison(self, prefix: str) -> Comparison:
        """The first comparison whose name starts with ``prefix`` (e.g. ``"(a)"``)."""
        for c in self.comparisons:
            if c.name.startswith(prefix):
                return c
        raise KeyError(prefix)

    @property
    def worst_entries(self) -> list:
        """Failing entries of every comparison, worst first (accepted entries excluded)."""
        entries = [e for c in self.comparisons for e in c.entries if not e.ratio <= 1.0]
        return sorted(entries, key=lambda e: -_nan_to_inf(e.ratio))

    @property
    def findings(self) -> list:
        """Entries accepted after re-examination: kinks, references contradicted by finite differences,
        and differences below the resolution of f's values."""
        return [e for c in self.comparisons for e in c.entries if e.accepted]

    @property
    def summary(self) -> str:
        """One line: the verdict, what failed and the worst entry with its values (pytest's short summary)."""
        if self.passed:
            extra = ""
            refs = [e for e in self.findings if "sides with the rule" in e.note]
            if refs:
                extra = f"; finding: the reference is wrong at {len({e.where for e in refs})} entr" \
                        f"{'y' if len({e.where for e in refs}) == 1 else 'ies'} (finite differences side with the rule)"
            return f"gradcheck PASSED: {self.function}{extra}"
        failed = []
        for c in self.comparisons:
            if c.failed and c.name.split(")")[0] + ")" not in failed:
                failed.append(c.name.split(")")[0] + ")")
        line = f"gradcheck FAILED: {self.function} {' '.join(failed)}"
        worst = self.worst_entries
        if worst:
            e = worst[0]
            vals = [f"rule {show(e.rule)}" + (" (VJP of a random cotangent)" if e.cotangent == "random" else "")]
            if e.reference is not None:
                vals.append(f"reference {show(e.reference)}")
            if e.fd is not None:
                vals.append(f"fd {show(e.fd)}")
            at = f" (x = {show(e.x)})" if e.x is not None else ""
            note = f"; {e.note}" if e.note else ""
            more = len({x.where for x in worst}) - 1
            line += f"; worst {e.where}{at}: {', '.join(vals)}{note}" + (f"; {more} more entr{'y' if more == 1 else 'ies'}" if more > 0 else "")
        else:
            details = [c.detail for c in self.comparisons if c.failed and c.detail]
            if details:
                line += f"; {details[0]}"
        return line.replace("\n", " ")

    def __str__(self) -> str:
        lines = [self.summary, f"  ({self.settings})"]
        width = max([len(c.name) for c in self.comparisons] + [10])
        lines.append(f"  {'comparison':<{width}}  {'verdict':<7}  {'err/tol':>9}  detail")
        for c in self.comparisons:
            worst = "" if c.verdict == SKIP else _fmt(c.worst)
            lines.append(f"  {c.name:<{width}}  {c.verdict:<7}  {worst:>9}  {c.detail}")
        rows = _merge(self.worst_entries)[: self.max_entries]
        accepted = _merge(self.findings)
        rows += accepted[: max(0, self.max_entries - len(rows))]
        if rows:
            lines.append("  entries (one row per input entry; x = its input value; rule = f's VJP; reference = jax.vjp of")
            lines.append("           the reference in float64; fd = finite difference in float64; NaN/inf shown as such,")
            lines.append("           - = not computed):")
            wl = max(len(e.where) for e in rows)
            wc = max([len(e.cotangent) for e in rows] + [9])
            lines.append(
                f"    {'entry':<{wl}}  {'x':>10}  {'cotangent':<{wc}}  {'rule':>12}  {'reference':>12}  {'fd':>12}"
                f"  {'|error|':>9}  {'tol':>9}  note"
            )
            for e in rows:
                lines.append(
                    f"    {e.where:<{wl}}  {_fmtv(e.x, 10)}  {e.cotangent:<{wc}}  {_fmtv(e.rule)}  {_fmtv(e.reference)}"
                    f"  {_fmtv(e.fd)}  {_fmt(e.error):>9}  {_fmt(e.tol):>9}  {e.note}"
                )
        if self.skipped:
            lines.append("  skipped leaves:")
            lines += [f"    {k}: {why}" for k, why in self.skipped]
        if self.notes:
            lines.append("  notes:")
            lines += [f"    - {n}" for n in self.notes]
        if self.power:
            lines.append("  detection power:")
            lines += [f"    - {p}" for p in self.power]
        return "\n".join(lines)

    __repr__ = __str__


def _merge(entries: list) -> list:
    """One row per input entry across comparisons: values missing in one row are taken from another
    row of the same entry (full mode's (a) has the reference, its (b) the finite difference)."""
    rows, order = {}, []
    for e in entries:
        key = e.where
        if key not in rows:
            rows[key] = Entry(**{k: getattr(e, k) for k in e.__dataclass_fields__})
            order.append(key)
            continue
        r = rows[key]
        for k in ("reference", "fd", "x", "rule"):
            if getattr(r, k) is None and getattr(e, k) is not None:
                setattr(r, k, getattr(e, k))
        if e.note and e.note not in r.note:
            r.note = f"{r.note}; {e.note}" if r.note else e.note
    return [rows[k] for k in order]




def _nan_to_inf(x: float) -> float:
    return float("inf") if np.isnan(x) else x


def _fmt(x: float) -> str:
    if np.isnan(x):
        return "NaN"
    if np.isinf(x):
        return "inf"
    return f"{x:.2e}"


def _fmtv(x, width: int = 12) -> str:
    """A value for the table: ``-`` when not computed, ``NaN``/``+inf``/``-inf`` named."""
    if x is None:
        return f"{'-':>{width}}"
    if np.isnan(x):
        return f"{'NaN':>{width}}"
    if np.isinf(x):
        return f"{'+inf' if x > 0 else '-inf':>{width}}"
    return f"{x:>{width}.5g}"
