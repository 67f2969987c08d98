"""Fit a behavioral prior to demonstrations, save it, and measure it next to the other kinds:
held-out fit, the std near and far from the demonstrations, the return of the mean action,
and the two pictures of the pathology (what ``kl-rl fit-prior`` runs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def fit_keys(seed: int) -> tuple[Any, Any, Any]:
    """The keys of ``fit-prior --seed``: (fit, distance probes, mean-action rollouts)."""
    import jax

    key_fit, key_probe, key_roll = jax.random.split(jax.random.key(seed), 3)
    return key_fit, key_probe, key_roll


@dataclass(frozen=True)
class CompareSpec:
    """What ``kl-rl fit-prior`` does: fit ``prior`` to ``demos``, save it to ``out``, and measure
    it next to the kinds in ``compare``."""

    demos: Path
    prior: str = "gp"
    out: Path | None = None
    options: Any = None  # a priors.PriorOptions (None: each kind's defaults)
    compare: tuple[str, ...] = ()
    num_demos: int | None = None
    holdout_episodes: int = 3
    rollout_episodes: int = 5
    seed: int = 0
    overwrite: bool = False


def check(args: CompareSpec) -> list[str]:
    """The kinds to fit (``prior`` first); one-line PriorError on a bad kind or count."""
    from kl_rl.priors import PriorError, registry

    kinds = [args.prior] + [k for k in args.compare if k != args.prior]
    for kind in kinds:
        registry.get(kind)  # one-line PriorError for an unknown kind
    if args.holdout_episodes < 0 or args.rollout_episodes < 0:
        raise PriorError("holdout-episodes and rollout-episodes must be >= 0")
    if args.num_demos is not None and args.num_demos < 1:
        raise PriorError(f"num-demos must be >= 1, got {args.num_demos}")
    return kinds


def fit_and_compare(args: CompareSpec, log: Any = print) -> tuple[dict[str, dict[str, Any]], Path, dict[str, Any]]:
    """Fits and saves the prior, writes diagnostics.json / .md and the two pictures into the
    output folder; returns (per-kind rows, the folder, the summary)."""
    kinds = check(args)
    import numpy as np

    from kl_rl import demos as demos_lib
    from kl_rl import plots, priors
    from kl_rl.envs import preset
    from kl_rl.priors import diagnostics as diag

    data = demos_lib.load(args.demos)
    env_name = data.metadata.get("env", "unknown")
    if args.num_demos is not None:
        data = demos_lib.select(data, args.num_demos)
    out = args.out or Path("runs/priors") / f"{env_name}-{args.prior}"
    if (out / "prior.json").exists() and not args.overwrite:
        raise FileExistsError(f"{out} already holds a prior; pass --overwrite or choose another --out")
    for kind in kinds:  # bad options fail now, before minutes of fitting
        priors.options_for(kind, **priors.kind_options(args.options, kind, env_name))
    if args.holdout_episodes >= data.num_episodes:
        raise priors.PriorError(f"holdout-episodes ({args.holdout_episodes}) must be smaller than the number of "
                                f"episodes ({data.num_episodes})")

    obs_all, act_all = np.asarray(data.observations), np.asarray(data.actions)
    episode = np.asarray(data.episode_ids)
    train = episode < data.num_episodes - args.holdout_episodes
    key_fit, key_probe, key_roll = fit_keys(args.seed)
    probes = diag.distance_probes(key_probe, obs_all[train])
    grid = diag.pca_grid(obs_all[train])
    rows: dict[str, dict[str, Any]] = {}
    curves, maps, fitted = {}, {}, {}
    for kind in kinds:
        log(f"fitting {kind} on {int(train.sum())} states ({data.num_episodes - args.holdout_episodes} "
                      "episodes) ...")
        options = priors.kind_options(args.options, kind, env_name)
        prior, info = priors.fit_with_info(kind, key_fit, obs_all[train], act_all[train], **options)
        fitted[kind] = (prior, info)
        by_scale = diag.std_by_scale(prior, probes)
        row: dict[str, Any] = {"fit_seconds": info["fit_seconds"], "std_by_scale": by_scale,
                               "std_near": by_scale[0.0], "std_far": by_scale[diag.FAR_SCALE]}
        if args.holdout_episodes:
            row.update(diag.heldout_metrics(prior, obs_all[~train], act_all[~train]))
        curves[kind] = (probes["distance"], diag.batched_predict(prior, probes["states"])[1].mean(axis=1))
        if kind in ("gp", "mlp"):
            maps[kind] = diag.batched_predict(prior, grid["states"])[1].mean(axis=1)
        if args.rollout_episodes and env_name != "unknown":
            row["mean_action_return"] = diag.mean_action_return(prior, env_name, args.rollout_episodes,
                                                                int(data.metadata.get("episode_length")
                                                                    or preset(env_name).episode_length),
                                                                key_roll)
        rows[kind] = row

    if args.holdout_episodes:
        log(f"refitting {args.prior} on all {data.num_episodes} episodes for the saved prior ...")
        final, final_info = priors.fit_with_info(args.prior, key_fit, obs_all, act_all,
                                                 **priors.kind_options(args.options, args.prior, env_name))
    else:
        final, final_info = fitted[args.prior]
    final_info = {**final_info, "demos": str(args.demos), "env": env_name, "num_episodes": data.num_episodes,
                  "demos_returns_mean": float(data.episode_returns.mean())}
    final_info.pop("bound_trace", None)
    priors.save(final, out, info=final_info)

    title = f"{env_name}: {data.num_episodes - args.holdout_episodes} demonstration episodes"
    plots.std_vs_distance(curves, out / "std_vs_distance.png", title=title)
    if maps:
        plots.pca_std_maps(maps, grid, out / "pca_std_map.png", title=title)
    summary = {"env": env_name, "demos": str(args.demos), "prior": args.prior,
               "holdout_episodes": args.holdout_episodes,
               "far_scale": diag.FAR_SCALE, "probe_scales": list(diag.PROBE_SCALES),
               "demo_return_mean": float(data.episode_returns.mean()), "kinds": rows,
               "saved_fit_seconds": final_info["fit_seconds"]}
    tmp = out / "diagnostics.tmp.json"
    tmp.write_text(json.dumps(summary, indent=2, default=float))
    tmp.replace(out / "diagnostics.json")
    (out / "diagnostics.md").write_text(_markdown(rows, args, summary))
    log(f"saved the {args.prior} prior (refitted on all episodes: {final_info['fit_seconds']:.1f} s) to "
                  f"{out}; pictures: std_vs_distance.png, pca_std_map.png")
    return rows, out, summary


def cells(kind: str, row: dict[str, Any]) -> list[str]:
    ret = row.get("mean_action_return")
    return [kind, f"{row['nll']:.3f}" if "nll" in row else "-", f"{row['rmse']:.4f}" if "rmse" in row else "-",
            f"{row['std_near']:.4f}", f"{row['std_far']:.4f}", f"{row['std_far'] / row['std_near']:.2f}",
            (f"{ret['mean']:.1f}" + (f" ({ret['success']:.0%} success)" if "success" in ret else "")) if ret else "-",
            f"{row['fit_seconds']:.1f}"]


HEADER = ["prior", "held-out NLL", "held-out RMSE", "std near", "std far", "far / near", "mean-action return",
          "fit s"]


def _markdown(rows: dict[str, dict[str, Any]], args: CompareSpec, summary: dict[str, Any]) -> str:
    lines = [f"Priors fitted to {args.demos} without the last {args.holdout_episodes} episodes; "
             f"demonstrations' mean return {summary['demo_return_mean']:.1f}.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells(kind, row)) + " |" for kind, row in rows.items()]
    return "\n".join(lines) + "\n"
