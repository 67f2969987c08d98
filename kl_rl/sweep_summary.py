"""Sweep results per configuration (grid point): final and area-under-curve return over seeds,
as mean, 95% bootstrap confidence interval (scipy.stats.bootstrap, percentile) and interquartile
mean (scipy.stats.trim_mean at 25%); written as summary.csv / summary.md with a figure of the
learning curves and their bands."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from kl_rl.sweep import SweepRun



def eval_curve(rows: Sequence[dict[str, Any]], key: str = "eval_return") -> tuple[np.ndarray, np.ndarray]:
    """(env steps [K], eval return [K]) of one run's evaluated epochs (``key``: another evaluation
    metric, e.g. eval_success)."""
    points = [(r["env_steps"], r[key]) for r in rows if r.get(key) is not None]
    steps, returns = zip(*points, strict=True) if points else ((), ())
    return np.asarray(steps, float), np.asarray(returns, float)


def area_under_curve(steps: np.ndarray, returns: np.ndarray) -> float:
    """Mean return over training: trapezoidal area under the eval curve over its span."""
    if len(steps) < 2:
        return float(returns[-1]) if len(returns) else float("nan")
    return float(np.trapezoid(returns, steps) / (steps[-1] - steps[0]))


def aggregate(values: Sequence[float], confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean, percentile-bootstrap CI of the mean and interquartile mean of per-seed values."""
    x = np.asarray(values, float)
    out = {"n": int(x.size), "mean": float(x.mean()), "iqm": float(stats.trim_mean(x, 0.25))}
    if x.size < 2 or np.ptp(x) == 0:
        out.update(ci_low=float(x.mean()), ci_high=float(x.mean()))
    else:
        ci = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=2000, method="percentile",
                             rng=np.random.default_rng(seed)).confidence_interval
        out.update(ci_low=float(ci.low), ci_high=float(ci.high))
    return out


def episode_statistics(returns: np.ndarray, early: np.ndarray, success: np.ndarray | None = None) -> dict[str, Any]:
    """What a many-episode evaluation reports: the episodes' returns [E], their mean with its
    standard error and 95% bootstrap CI, IQM, min and max, how many ended early (``early`` [E]
    bool: terminated before the time limit) and, given ``success`` [E], the success rate."""
    returns = np.asarray(returns, float)
    stats = aggregate(returns)
    out = {"episodes": int(returns.size), "returns": returns.tolist(), "mean": stats["mean"],
           "std_err": float(returns.std(ddof=1) / np.sqrt(returns.size)) if returns.size > 1 else 0.0,
           "ci_low": stats["ci_low"], "ci_high": stats["ci_high"], "iqm": stats["iqm"],
           "min": float(returns.min()), "max": float(returns.max()), "early_ends": int(np.sum(early))}
    if success is not None:
        out["success_rate"] = float(np.mean(success))
    return out


def summarize(runs: Sequence[SweepRun], rows: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One record per configuration, in the sweep's order; with ``success`` (final and AUC of the
    success rate) where the runs report one (door)."""
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(run.config_name, []).append(i)
    table = []
    for name, members in groups.items():
        curves = [eval_curve(rows[i]) for i in members]
        record = {"config": name, "seeds": [runs[i].seed for i in members],
                  "final": aggregate([c[1][-1] for c in curves]),
                  "auc": aggregate([area_under_curve(*c) for c in curves])}
        if any(r.get("eval_success") is not None for r in rows[members[0]]):
            success = [eval_curve(rows[i], "eval_success") for i in members]
            record.update(success_final=aggregate([c[1][-1] for c in success]),
                          success_auc=aggregate([area_under_curve(*c) for c in success]))
        table.append(record)
    return table


def format_ci(stats: dict[str, float], digits: int = 1) -> str:
    """``mean [ci_low, ci_high]`` of an ``aggregate`` record, one decimal (or ``digits``)."""
    return f"{stats['mean']:.{digits}f} [{stats['ci_low']:.{digits}f}, {stats['ci_high']:.{digits}f}]"


def write_summary(sweep_dir: Path, table: list[dict[str, Any]]) -> tuple[Path, Path]:
    """``summary.csv`` and ``summary.md`` in ``sweep_dir``."""
    sweep_dir = Path(sweep_dir)
    measures = ("final", "auc") + (("success_final", "success_auc") if "success_final" in table[0] else ())
    fields = ["config", "seeds"] + [f"{m}_{s}" for m in measures for s in ("mean", "ci_low", "ci_high", "iqm")]
    tmp_csv = sweep_dir / "summary.tmp.csv"
    with tmp_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for rec in table:
            writer.writerow({"config": rec["config"], "seeds": len(rec["seeds"]),
                             **{f"{m}_{s}": f"{rec[m][s]:.2f}" for m in measures
                                for s in ("mean", "ci_low", "ci_high", "iqm")}})
    success = "success_final" in table[0]
    lines = ["| config | seeds | final return: mean [95% CI] | final IQM | AUC: mean [95% CI] | AUC IQM |"
             + (" final success: mean [95% CI] | final success IQM | success AUC: mean [95% CI] |" if success else ""),
             "|---|---|---|---|---|---|" + ("---|---|---|" if success else "")]
    for rec in table:
        f, a = rec["final"], rec["auc"]
        line = (f"| {rec['config']} | {len(rec['seeds'])} | {format_ci(f)} | {f['iqm']:.1f} "
                f"| {format_ci(a)} | {a['iqm']:.1f} |")
        if success:
            sf, sa = rec["success_final"], rec["success_auc"]
            line += f" {format_ci(sf, 2)} | {sf['iqm']:.2f} | {format_ci(sa, 2)} |"
        lines.append(line)
    tmp_md = sweep_dir / "summary.tmp.md"
    tmp_md.write_text("\n".join(lines) + "\n")
    tmp_csv.replace(sweep_dir / "summary.csv")  # renamed when complete: a kill leaves old or new files
    tmp_md.replace(sweep_dir / "summary.md")
    return sweep_dir / "summary.csv", sweep_dir / "summary.md"


def plot_curve_bands(ax: Any, groups: dict[str, Sequence[Sequence[dict[str, Any]]]],
                     key: str = "eval_return") -> None:
    """On ``ax``: per group (name -> one metric-row list per seed), the mean eval return (or
    ``key``) with a 95% bootstrap band over seeds at each evaluated step."""
    for color, (name, members) in enumerate(groups.items()):
        curves = [eval_curve(rows, key) for rows in members]
        steps = curves[0][0]
        returns = np.stack([c[1] for c in curves])  # [seeds, K]
        bands = [aggregate(returns[:, k]) for k in range(returns.shape[1])]
        ax.plot(steps, returns.mean(0), "o-", ms=3, color=f"C{color}", label=f"{name} ({len(members)} seeds)")
        ax.fill_between(steps, [b["ci_low"] for b in bands], [b["ci_high"] for b in bands], color=f"C{color}",
                        alpha=0.2, lw=0)


def curves_figure(runs: Sequence[SweepRun], rows: Sequence[Sequence[dict[str, Any]]], path: Path,
                  title: str = "") -> Path:
    """Mean eval return per configuration with a 95% bootstrap band over seeds at each point
    (and a success-rate panel where the runs report one)."""
    from kl_rl.plots import _save, plt

    success = any(r.get("eval_success") is not None for r in rows[0])
    fig, axes = plt.subplots(1, 2 if success else 1, figsize=(11.0 if success else 6.4, 4.0), dpi=120,
                             squeeze=False)
    groups: dict[str, list[Sequence[dict[str, Any]]]] = {}
    for run, run_rows in zip(runs, rows, strict=True):
        groups.setdefault(run.config_name, []).append(run_rows)
    for ax, key, label in zip(axes[0], ("eval_return", "eval_success"),
                              ("deterministic eval return", "deterministic eval success rate"), strict=False):
        plot_curve_bands(ax, groups, key)
        ax.set(xlabel="environment steps", ylabel=label, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))


def write_sweep_summary(sweep_dir: Path, label: str, cfg: Any, runs: Sequence[SweepRun],
                        rows: Sequence[Sequence[dict[str, Any]]]) -> Path:
    """summary.csv, summary.md and curves.png of one finished sweep folder; returns summary.md."""
    _, md = write_summary(sweep_dir, summarize(runs, rows))
    curves_figure(runs, rows, sweep_dir / "curves.png", title=f"{cfg.env} · {label}")
    return md
