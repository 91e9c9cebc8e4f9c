"""The Pareto plot of `runq advise`: cost per hour against p95 delay, one PNG."""

from __future__ import annotations

from pathlib import Path

from runq.bench.advise import Advice, Outcome


def plot_pareto(advice: Advice, path: Path) -> Path:
    """Every configuration simulated (grey), the Pareto set (line), the target (dashed), the
    recommendation, the rule of thumb and the current configuration (marked). Returns `path`."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file is the product
    import matplotlib.pyplot as plt

    def xy(outcomes: tuple[Outcome, ...] | list[Outcome]) -> tuple[list[float], list[float]]:
        return [o.p95_delay_s for o in outcomes], [advice.per_hour(o) for o in outcomes]

    figure, axes = plt.subplots(figsize=(8, 5), dpi=100)
    try:
        axes.scatter(*xy(advice.outcomes), s=12, color="0.75", label="simulated")
        axes.plot(*xy(advice.pareto), "-o", color="tab:blue", markersize=4, label="Pareto set")
        axes.axvline(advice.target_p95_s, color="tab:red", linestyle="--", label="target p95")
        marks = [
            (advice.recommended, "*", "tab:green", "recommended"),
            (advice.rule_of_thumb, "s", "tab:orange", "rule of thumb"),
            (advice.current, "D", "tab:purple", "current"),
        ]
        for outcome, marker, color, label in marks:
            if outcome is not None:
                x, y = xy([outcome])
                axes.scatter(x, y, s=140, marker=marker, color=color, label=label, zorder=3)
        delays = [o.p95_delay_s for o in advice.outcomes if o.p95_delay_s > 0]
        if delays and max(delays) / min(delays) > 20:
            axes.set_xscale("log")  # a queue that never drains would squash the rest
        axes.set_xlabel("p95 delay (s)")
        axes.set_ylabel("cost (USD per hour)")
        axes.set_title(f"runq advise: {len(advice.outcomes)} configurations, {advice.jobs} jobs")
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper right", fontsize="small")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
