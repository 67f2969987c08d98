"""Several runs on one figure: learning curves from any mix of run folders, sweep folders (one
per static choice, or a folder of them) and experiment records, grouped by label, with a 95%
bootstrap band over seeds, the demonstrations' mean return as a dashed line, a success-rate
panel where the runs report one (door); and a table of final return and area under the curve
with CIs (markdown and CSV). What ``kl-rl compare`` draws."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kl_rl.run_folder import read_metrics
from kl_rl.sweep_summary import aggregate, area_under_curve, eval_curve, format_ci


class CompareError(ValueError):
    """A folder that holds no runs, or groups that cannot share a figure (one line)."""


@dataclasses.dataclass
class Group:
    """The runs (seeds) shown as one curve."""

    label: str
    env: str
    runs: list[list[dict[str, Any]]] = dataclasses.field(default_factory=list)  # per run, its metric rows
    demo_returns: set[float] = dataclasses.field(default_factory=set)


def default_label(config: dict[str, Any]) -> str:
    """``algo`` (``kl:<prior>`` for kl), as the sweep runner and the experiments name them."""
    algo = config.get("algo", "sac")
    return f"kl:{config.get('prior', 'gp')}" if algo == "kl" else algo


def _demo_return(record: dict[str, Any]) -> float | None:
    value = record.get("demos", {}).get("mean_return") if isinstance(record.get("demos"), dict) else None
    return float(value) if value is not None else None


def _sweep_runs(folder: Path, label: str | None) -> list[tuple[str, str, list[dict[str, Any]], float | None]]:
    from kl_rl.sweep import runs_from_record

    record = json.loads((folder / "sweep.json").read_text())
    base = label or default_label(record["config"])
    out = []
    for run in runs_from_record(record):
        metrics = folder / run.name / "metrics.jsonl"
        if not metrics.exists():
            raise CompareError(f"{folder / run.name} has no metrics.jsonl (the sweep has not started it)")
        name = base if run.config_name == "base" else f"{base} {run.config_name}"
        out.append((name, record["config"]["env"], read_metrics(metrics), _demo_return(record)))
    return out


def load_groups(paths: Sequence[Path], labels: Sequence[str] | None = None) -> dict[str, Group]:
    """The groups of ``paths``: a run folder (config.json + metrics.jsonl) is one run of its
    label; a sweep folder (sweep.json) gives each of its runs, grouped by grid point; a folder of
    sweep folders gives all of theirs. ``labels`` (one per path) overrides the label."""
    if labels and len(labels) != len(paths):
        raise CompareError(f"--label needs one label per folder ({len(paths)} folders, {len(labels)} labels)")
    groups: dict[str, Group] = {}
    for i, path in enumerate(paths):
        path = Path(path)
        label = labels[i] if labels else None
        if (path / "sweep.json").exists():
            found = _sweep_runs(path, label)
        elif (path / "config.json").exists():
            if not (path / "metrics.jsonl").exists():
                raise CompareError(f"{path} has no metrics.jsonl (the run has not started)")
            record = json.loads((path / "config.json").read_text())
            found = [(label or default_label(record["config"]), record["config"]["env"],
                      read_metrics(path / "metrics.jsonl"), _demo_return(record))]
        elif sweeps := sorted(p.parent for p in path.glob("*/sweep.json")):
            found = [one for sweep in sweeps for one in _sweep_runs(sweep, label)]
        else:
            raise CompareError(f"{path} is neither a run folder (config.json) nor a sweep folder (sweep.json)")
        for name, env, rows, demo in found:
            group = groups.setdefault(name, Group(name, env))
            if group.env != env:
                raise CompareError(f"label {name} holds runs of {group.env} and {env}; give them other --label names")
            group.runs.append(rows)
            if demo is not None:
                group.demo_returns.add(round(demo, 6))
    envs = sorted({g.env for g in groups.values()})
    if len(envs) > 1:
        raise CompareError(f"compare runs of one env at a time (got {', '.join(envs)})")
    return groups


def _common_curves(runs: Sequence[Sequence[dict[str, Any]]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps [K], values [seeds, K]) at the env steps every run evaluated."""
    curves = [eval_curve(rows, key) for rows in runs]
    common = sorted(set.intersection(*(set(c[0].tolist()) for c in curves))) if curves else []
    values = np.stack([[dict(zip(c[0].tolist(), c[1].tolist(), strict=True))[s] for s in common] for c in curves])
    return np.asarray(common, float), values


def table_rows(groups: dict[str, Group]) -> list[dict[str, Any]]:
    """Per group: seeds, env steps, final return and AUC (mean, 95% bootstrap CI, IQM) over the
    steps every seed evaluated, and the same of the success rate where reported."""
    out = []
    for name, group in groups.items():
        steps, values = _common_curves(group.runs, "eval_return")
        if not steps.size:
            raise CompareError(f"the runs of {name} share no evaluated env step")
        row = {"label": name, "env": group.env, "seeds": len(group.runs), "env_steps": int(steps[-1]),
               "final": aggregate(values[:, -1]), "auc": aggregate([area_under_curve(steps, v) for v in values])}
        if any(r.get("eval_success") is not None for rows in group.runs for r in rows):
            s_steps, success = _common_curves(group.runs, "eval_success")
            row.update(success_final=aggregate(success[:, -1]),
                       success_auc=aggregate([area_under_curve(s_steps, v) for v in success]))
        out.append(row)
    return out


CSV_FIELDS = ("label", "env", "seeds", "env_steps", "final_mean", "final_ci_low", "final_ci_high", "final_iqm",
              "auc_mean", "auc_ci_low", "auc_ci_high", "success_final_mean", "success_final_ci_low",
              "success_final_ci_high", "success_auc_mean")


def write_table(rows: Sequence[dict[str, Any]], md_path: Path, csv_path: Path) -> str:
    """The table as markdown (returned, and written to ``md_path``) and CSV."""
    success = any("success_final" in r for r in rows)
    header = ["label", "seeds", "env steps", "final return: mean [95% CI]", "AUC: mean [95% CI]", "final IQM"]
    header += ["final success: mean [95% CI]", "success AUC"] if success else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["label"], str(r["seeds"]), f"{r['env_steps']:,}", format_ci(r["final"]), format_ci(r["auc"]),
                 f"{r['final']['iqm']:.1f}"]
        if success:
            cells += [format_ci(r["success_final"], 2), f"{r['success_auc']['mean']:.2f}"] if "success_final" in r \
                else ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    md_path.write_text(text)
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in rows:
            flat = {"label": r["label"], "env": r["env"], "seeds": r["seeds"], "env_steps": r["env_steps"],
                    "final_mean": r["final"]["mean"], "final_ci_low": r["final"]["ci_low"],
                    "final_ci_high": r["final"]["ci_high"], "final_iqm": r["final"]["iqm"],
                    "auc_mean": r["auc"]["mean"], "auc_ci_low": r["auc"]["ci_low"], "auc_ci_high": r["auc"]["ci_high"]}
            if "success_final" in r:
                flat.update(success_final_mean=r["success_final"]["mean"],
                            success_final_ci_low=r["success_final"]["ci_low"],
                            success_final_ci_high=r["success_final"]["ci_high"],
                            success_auc_mean=r["success_auc"]["mean"])
            writer.writerow(flat)
    return text


def figure(groups: dict[str, Group], path: Path, title: str = "") -> Path:
    """Mean eval return per group with a 95% bootstrap band over seeds, the demonstrations' mean
    return dashed, and a success-rate panel where the runs report one."""
    from kl_rl.plots import _save, plt

    success = any(r.get("eval_success") is not None for g in groups.values() for rows in g.runs for r in rows)
    fig, axes = plt.subplots(1, 2 if success else 1, figsize=(11.0 if success else 6.8, 4.2), dpi=120,
                             squeeze=False)
    for ax, key, ylabel in zip(axes[0], ("eval_return", "eval_success"),
                               ("deterministic eval return", "deterministic eval success rate"), strict=False):
        for color, group in enumerate(groups.values()):
            steps, values = _common_curves(group.runs, key)
            if not steps.size:
                continue
            bands = [aggregate(values[:, k]) for k in range(values.shape[1])]
            ax.plot(steps, values.mean(0), "o-", ms=3, color=f"C{color}", label=f"{group.label} ({len(group.runs)})")
            ax.fill_between(steps, [b["ci_low"] for b in bands], [b["ci_high"] for b in bands], color=f"C{color}",
                            alpha=0.2, lw=0)
        if key == "eval_return":
            for demo in sorted({d for g in groups.values() for d in g.demo_returns}):
                ax.axhline(demo, color="0.3", ls="--", lw=1.0, label=f"demonstrations' mean ({demo:.1f})")
        ax.set(xlabel="environment steps", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
