"""Figures: learning curves from ``metrics.jsonl`` rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curve(rows: Sequence[dict[str, Any]], path: Path, title: str = "",
                   demo_return: float | None = None) -> Path:
    """Deterministic evaluation return (mean, min-max band) and training-episode return
    against environment steps, with the demonstrations' mean return as a dashed line where
    known, saved as a PNG; on an env with a success rule (door) a second panel shows the success
    rate of the evaluation and training episodes."""
    success = any(r.get("eval_success") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if success else 1, figsize=(11.0 if success else 6.4, 4.0), dpi=120,
                             squeeze=False)
    ax = axes[0, 0]
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
    if demo_return is not None:
        ax.axhline(demo_return, color="0.3", ls="--", lw=1.0, label=f"demonstrations' mean ({demo_return:.1f})")
    ax.set(xlabel="environment steps", ylabel="episode return", title=title)
    ax.grid(alpha=0.3)
    if train or evals or demo_return is not None:
        ax.legend(loc="best", fontsize=8)
    if success:
        ax = axes[0, 1]
        for key, style, label in (("train_success", "-", "training episodes"),
                                  ("eval_success", "o-", "deterministic eval")):
            points = [(r["env_steps"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), style, ms=3, label=label,
                        color="0.6" if key == "train_success" else "C0")
        ax.set(xlabel="environment steps", ylabel="success rate", ylim=(-0.03, 1.03), title="success")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def std_vs_distance(curves: dict[str, tuple[Any, Any]], path: Path, title: str = "", bins: int = 16) -> Path:
    """Predictive std of each prior against distance to the nearest demonstration state.
    ``curves`` maps a prior kind to (distance [P], std [P]) of the same probe states; each
    curve is the mean std within equal-width distance bins (the first point: on the demos)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    all_d = np.concatenate([np.asarray(d) for d, _ in curves.values()])
    edges = np.linspace(0.0, float(all_d.max()) + 1e-9, bins + 1)
    for i, (kind, (dist, std)) in enumerate(curves.items()):
        dist, std = np.asarray(dist), np.asarray(std)
        on = dist < 1e-6
        xs, ys = ([0.0], [float(std[on].mean())]) if on.any() else ([], [])
        which = np.digitize(dist[~on], edges) - 1
        for b in range(bins):
            sel = which == b
            if sel.sum() >= 5:
                xs.append(float(dist[~on][sel].mean()))
                ys.append(float(std[~on][sel].mean()))
        ax.plot(xs, ys, "o-", ms=3, color=f"C{i}", label=kind)
    ax.set_yscale("log")
    ax.set_xlabel("distance to nearest demonstration state (standardised units)")
    ax.set_ylabel("predictive std of pi0 (mean over action dims)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def pca_std_maps(maps: dict[str, Any], grid: dict[str, Any], path: Path, title: str = "") -> Path:
    """Side-by-side maps of predictive std over the first two principal components of the
    demonstration states (log colour scale shared by all panels), demos overlaid."""
    import numpy as np
    from matplotlib.colors import LogNorm

    fig, axes = plt.subplots(1, len(maps), figsize=(5.0 * len(maps), 4.2), dpi=120, squeeze=False)
    values = np.concatenate([np.asarray(v).ravel() for v in maps.values()])
    norm = LogNorm(vmin=max(float(values.min()), 1e-4), vmax=float(values.max()))
    image = None
    for ax, (kind, std) in zip(axes[0], maps.items(), strict=True):
        shape = (len(grid["pc2"]), len(grid["pc1"]))
        image = ax.pcolormesh(grid["pc1"], grid["pc2"], np.asarray(std).reshape(shape), norm=norm, cmap="viridis",
                              shading="auto")
        ax.scatter(grid["demo_proj"][:, 0], grid["demo_proj"][:, 1], s=0.5, c="w", alpha=0.15, lw=0)
        ax.set_title(f"{kind}: predictive std")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    fig.colorbar(image, ax=axes[0].tolist(), label="std (mean over action dims)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
