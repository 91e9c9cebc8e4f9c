"""How the dashboard writes numbers: seconds and dollars, short and never 'None'."""

from __future__ import annotations

DASH = "\u2013"  # an en dash: no figure yet


def seconds(value: float | None) -> str:
    """Example: None -> an en dash, 0.0123 -> '12 ms', 3.456 -> '3.46 s', 125 -> '2m 05s'."""
    if value is None:
        return DASH
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 100:
        return f"{value:.2f} s"
    minutes, rest = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def usd(value: float | None) -> str:
    """Example: 0.000412 -> '$0.00041', 1.5 -> '$1.50'."""
    if value is None:
        return DASH
    if value != 0 and abs(value) < 0.01:
        return f"${value:.2g}" if abs(value) < 0.0001 else f"${value:.5f}".rstrip("0")
    return f"${value:.2f}"
