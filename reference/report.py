"""One row of the ``python -m reference`` report, and the table that prints rows."""
from dataclasses import dataclass, field


@dataclass
class Row:
    """A checked item: its name, the dtype it ran in, measured errors and the verdict.

    ``errors`` maps a quantity (``"out"``, ``"dx"``, ``"weight"``, ``"mean"``...)
    to the largest error measured for it; ``tol`` is what it was allowed.
    """

    group: str
    name: str
    dtype: str
    errors: dict = field(default_factory=dict)
    tol: float = 0.0
    ok: bool = False
    note: str = ""


def format_table(rows):
    """A plain-text table of rows, one per line, worst error first within each group."""
    lines = [f"{'group':<10} {'name':<44} {'dtype':<8} {'worst error':>12} {'tolerance':>10}  verdict"]
    for r in rows:
        worst = max(r.errors.values()) if r.errors else 0.0
        which = max(r.errors, key=r.errors.get) if r.errors else "-"
        verdict = "ok" if r.ok else "FAIL"
        lines.append(
            f"{r.group:<10} {r.name:<44} {r.dtype:<8} {worst:>12.3e} {r.tol:>10.1e}  {verdict} ({which}){'  ' + r.note if r.note else ''}"
        )
    return "\n".join(lines)
