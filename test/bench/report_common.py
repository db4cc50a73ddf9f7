"""Formatting and verdict rules shared by every renderer of BENCHMARKS.md.

The rules (issue 17): a row says "met" only where the issue or the design sets a target; a
row with no target says so ("none") and carries no verdict; where the run's own spread
(the slowest and fastest round) straddles the target, the verdict is "within noise" and the
spread is printed. Nothing here imports another benchmark module, so any of them may import it.
"""
from __future__ import annotations

HEAD = "| figure | vTPU | peer | ratio | target | met |\n|---|---|---|---|---|---|"

#: The target column of a row the issue sets no target for.
NO_TARGET = "none"


def _fmt(x: float, unit: str = "") -> str:
    if unit == " µs" and x >= 1000:
        return _fmt(x / 1000, " ms")
    if unit == " ms" and x >= 10_000:
        return _fmt(x / 1000, " s")
    if x >= 1e6:
        s = f"{x / 1e6:.2f} M"
    elif x >= 1e4:
        s = f"{x / 1e3:.0f} k"
    elif x >= 100:
        s = f"{x:.0f}"
    else:
        s = f"{x:.2f}"
    return f"{s}{unit}".replace("M ", "M").strip()


def gib(b) -> str:
    """Bytes as GiB, or n/a."""
    return "n/a" if b is None else f"{b / 2**30:.2f} GiB"


def _row(name, ours, peer, ratio, target, met) -> str:
    """A table row. ``met`` is a bool or an already rendered verdict (see ``verdict``); a row whose
    target is "reported" (or None) has no target, so its met column is a dash whatever ``met`` says."""
    if target in ("reported", None, NO_TARGET):
        target, shown = NO_TARGET, "—"
    elif isinstance(met, str):
        shown = met
    else:
        shown = "yes" if met else "**no**"
    return f"| {name} | {ours} | {peer} | {ratio} | {target} | {shown} |"


def spread(values) -> tuple[float, float]:
    """(min, max) of a run's rounds."""
    values = list(values)
    return min(values), max(values)


def verdict(worst_ok: bool, best_ok: bool, spread_text: str) -> str:
    """"yes" when even the worst round meets the target, "**no**" when even the best misses it,
    otherwise "within noise" with the spread of the rounds that decided it."""
    if worst_ok:
        return "yes"
    if not best_ok:
        return "**no**"
    return f"within noise ({spread_text})"


def at_least(values, target: float, text=lambda lo, hi: f"{lo:.2f}–{hi:.2f}") -> str:
    """Verdict for "figure ≥ target" over per-round figures (higher is better)."""
    lo, hi = spread(values)
    return verdict(lo >= target, hi >= target, text(lo, hi))


def at_most(values, target: float, text=lambda lo, hi: f"{lo:.2f}–{hi:.2f}") -> str:
    """Verdict for "figure ≤ target" over per-round figures (lower is better)."""
    lo, hi = spread(values)
    return verdict(hi <= target, lo <= target, text(lo, hi))


def ratio_rounds(ours, peer, higher_is_better: bool = True) -> list[float]:
    """The ratio ours/peer (or peer/ours for times) over the extreme pairings of both runs' rounds:
    the spread a ratio can take when each side moves within its own rounds."""
    pairs = [(a, b) for a in spread(ours) for b in spread(peer)]
    return [a / b if higher_is_better else b / a for a, b in pairs]


def faster(speedup: float) -> str:
    """A time ratio (peer time / ours) as "N× faster" or, below 1, "N× slower"."""
    return f"{speedup:.2f}× faster" if speedup >= 1 else f"{1 / speedup:.2f}× slower"


def spread_ms(values_s) -> str:
    lo, hi = spread(values_s)
    return f"{lo * 1e3:.1f}–{hi * 1e3:.1f} ms"
