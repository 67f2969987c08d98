"""Figures: learning curves from ``metrics.jsonl`` rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curve(rows: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Deterministic evaluation return (mean, min-max band) and training-episode return
    against environment steps, saved as a PNG."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    train = [(r["env_steps"], r["train_return"]) for r in rows if r.get("train_return") is not None]
    if train:
        ax.plot(*zip(*train, strict=True), color="0.6", lw=1.0, label="training episodes")
    evals = [r for r in rows if r.get("eval_return") is not None]
    if evals:
        steps = [r["env_steps"] for r in evals]
        ax.fill_between(steps, [r["eval_return_min"] for r in evals],
                        [r["eval_return_max"] for r in evals], color="C0", alpha=0.2, lw=0)
        ax.plot(steps, [r["eval_return"] for r in evals], "o-", color="C0", ms=3,
                label="deterministic eval (mean, min-max)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
