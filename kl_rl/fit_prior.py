"""``kl-rl fit-prior``: fit a behavioral prior to demonstrations, save it, and measure it next
to the other prior kinds (held-out fit, std near and far from the demonstrations, the return
of the mean action) with the two pictures of the pathology."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import tyro

from kl_rl import compile_cache

ALL_KINDS = ("gp", "mlp", "ensemble", "dropout", "floor")


@dataclass
class PriorOptionArgs:
    """Options of the behavioral priors, shared by ``fit-prior`` and ``train``."""

    kernel: str | None = None
    """GP kernel: rbf, matern12, matern32, matern52 (ARD); default: the env's preset (rbf)."""
    num_inducing: int = 512
    """GP inducing points."""
    gp_method: str = "sgpr"
    """GP objective: sgpr (collapsed bound) or svgp (minibatch ELBO, for large demonstration sets)."""
    gp_steps: int = 150
    """Adam steps on the GP bound."""
    fit_points: int = 4096
    """sgpr: states in the hyperparameter fit (random subset; 0: all). The posterior uses all."""
    x64: bool = False
    """Fit the GP in float64."""
    mlp_steps: int = 10_000
    """Adam steps of the MLP kinds."""
    num_members: int = 5
    """Ensemble members."""
    dropout_rate: float = 0.1
    """MC-dropout rate."""
    num_passes: int = 20
    """MC-dropout passes per prediction."""
    min_std: float = 0.1
    """Std floor of the floor prior."""


@dataclass
class FitPriorArgs:
    """Fit a behavioral prior pi0 to demonstrations, save it, and write diagnostics and pictures."""

    demos: Path = Path("data/demos/halfcheetah.npz")
    """Demonstrations file (.npz with its .json), e.g. data/demos/<env>.npz."""
    prior: str = "gp"
    """Prior kind to fit and save: gp, mlp, ensemble, dropout or floor."""
    out: Path | None = None
    """Output folder (default runs/priors/<env>-<prior>); refused if it holds a prior, unless --overwrite."""
    options: Annotated[PriorOptionArgs, tyro.conf.OmitArgPrefixes] = field(default_factory=PriorOptionArgs)
    compare: tuple[str, ...] = ALL_KINDS
    """Prior kinds measured side by side in the table and pictures (--prior is always included)."""
    num_demos: int | None = None
    """Use only the first N demonstration episodes."""
    holdout_episodes: int = 3
    """Episodes held out (the last ones) for NLL/RMSE; the diagnostics use priors fitted without
    them, the saved prior is refitted on all episodes. 0: no held-out metrics."""
    rollout_episodes: int = 5
    """Episodes of the mean-action rollout in the env (0 skips it)."""
    seed: int = 0
    """Seed of the fits and the probes."""
    overwrite: bool = False
    """Replace a prior already in --out."""
    compile_cache: str = str(compile_cache.DEFAULT_DIR)
    """Persistent JAX compilation cache folder ("" turns it off); env KL_RL_COMPILE_CACHE."""


def kind_options(options: PriorOptionArgs, kind: str, env: str | None = None) -> dict[str, Any]:
    """The ``priors.fit`` options of ``kind`` taken from the command line (the kernel defaults to
    the env's preset)."""
    if kind == "gp":
        from kl_rl.config import PRESETS

        kernel = options.kernel or str(PRESETS.get(env or "", {}).get("kernel", "rbf"))
        return {"kernel": kernel, "num_inducing": options.num_inducing, "method": options.gp_method,
                "steps": options.gp_steps, "fit_points": options.fit_points, "x64": options.x64}
    extra = {"ensemble": {"num_members": options.num_members},
             "dropout": {"dropout_rate": options.dropout_rate, "num_passes": options.num_passes},
             "floor": {"min_std": options.min_std}}.get(kind, {})
    return {"steps": options.mlp_steps, **extra}


def _check(args: FitPriorArgs) -> list[str]:
    from kl_rl.priors import KINDS, PriorError

    kinds = [args.prior] + [k for k in args.compare if k != args.prior]
    for kind in kinds:
        if kind not in KINDS:
            raise PriorError(f"unknown prior '{kind}'; choose one of {', '.join(KINDS)}")
    if args.holdout_episodes < 0 or args.rollout_episodes < 0:
        raise PriorError("holdout-episodes and rollout-episodes must be >= 0")
    if args.num_demos is not None and args.num_demos < 1:
        raise PriorError(f"num-demos must be >= 1, got {args.num_demos}")
    return kinds


def fit_keys(seed: int) -> tuple[Any, Any, Any]:
    """The keys of ``fit-prior --seed``: (fit, distance probes, mean-action rollouts)."""
    import jax

    key_fit, key_probe, key_roll = jax.random.split(jax.random.key(seed), 3)
    return key_fit, key_probe, key_roll


def fit_prior(args: FitPriorArgs) -> int:
    kinds = _check(args)
    compile_cache.enable(args.compile_cache)
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from kl_rl import demos as demos_lib
    from kl_rl import plots, priors
    from kl_rl.priors import diagnostics as diag

    data = demos_lib.load(args.demos)
    env_name = data.metadata.get("env", "unknown")
    if args.num_demos is not None:
        data = demos_lib.select(data, args.num_demos)
    out = args.out or Path("runs/priors") / f"{env_name}-{args.prior}"
    if (out / "prior.json").exists() and not args.overwrite:
        raise FileExistsError(f"{out} already holds a prior; pass --overwrite or choose another --out")
    for kind in kinds:  # bad options fail now, before minutes of fitting
        priors.options_for(kind, **kind_options(args.options, kind, env_name))
    if args.holdout_episodes >= data.num_episodes:
        raise priors.PriorError(f"holdout-episodes ({args.holdout_episodes}) must be smaller than the number of "
                                f"episodes ({data.num_episodes})")

    console = Console() if Console().is_terminal else Console(width=140)
    obs_all, act_all = np.asarray(data.observations), np.asarray(data.actions)
    episode = np.asarray(data.episode_ids)
    train = episode < data.num_episodes - args.holdout_episodes
    key_fit, key_probe, key_roll = fit_keys(args.seed)
    probes = diag.distance_probes(key_probe, obs_all[train])
    grid = diag.pca_grid(obs_all[train])
    rows: dict[str, dict[str, Any]] = {}
    curves, maps, fitted = {}, {}, {}
    for kind in kinds:
        console.print(f"fitting {kind} on {int(train.sum())} states ({data.num_episodes - args.holdout_episodes} "
                      "episodes) ...")
        options = kind_options(args.options, kind, env_name)
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
                                                                int(data.metadata.get("episode_length", 1000)),
                                                                key_roll)
        rows[kind] = row

    if args.holdout_episodes:
        console.print(f"refitting {args.prior} on all {data.num_episodes} episodes for the saved prior ...")
        final, final_info = priors.fit_with_info(args.prior, key_fit, obs_all, act_all,
                                                 **kind_options(args.options, args.prior, env_name))
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
    table = _table(rows, args, Table)
    console.print(table)
    (out / "diagnostics.md").write_text(_markdown(rows, args, summary))
    console.print(f"saved the {args.prior} prior (refitted on all episodes: {final_info['fit_seconds']:.1f} s) to "
                  f"{out}; pictures: std_vs_distance.png, pca_std_map.png")
    return 0


def _cells(kind: str, row: dict[str, Any]) -> list[str]:
    ret = row.get("mean_action_return")
    return [kind, f"{row['nll']:.3f}" if "nll" in row else "-", f"{row['rmse']:.4f}" if "rmse" in row else "-",
            f"{row['std_near']:.4f}", f"{row['std_far']:.4f}", f"{row['std_far'] / row['std_near']:.2f}",
            f"{ret['mean']:.1f}" if ret else "-", f"{row['fit_seconds']:.1f}"]


HEADER = ["prior", "held-out NLL", "held-out RMSE", "std near", "std far", "far / near", "mean-action return",
          "fit s"]


def _table(rows: dict[str, dict[str, Any]], args: FitPriorArgs, table_cls: Any) -> Any:
    from kl_rl.priors.diagnostics import FAR_SCALE

    table = table_cls(title=f"priors on {args.demos} (std far: probes at {FAR_SCALE:g} std from the demos)")
    for name in HEADER:
        table.add_column(name, justify="right")
    for kind, row in rows.items():
        table.add_row(*_cells(kind, row))
    return table


def _markdown(rows: dict[str, dict[str, Any]], args: FitPriorArgs, summary: dict[str, Any]) -> str:
    lines = [f"Priors fitted to {args.demos} without the last {args.holdout_episodes} episodes; "
             f"demonstrations' mean return {summary['demo_return_mean']:.1f}.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(kind, row)) + " |" for kind, row in rows.items()]
    return "\n".join(lines) + "\n"
