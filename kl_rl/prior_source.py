"""Where a training run's demonstrations and behavioral prior come from.

Demonstrations: ``--demos`` or the shipped ``data/demos/<env>.npz``, optionally only the first
N episodes. Prior: fitted with ``kl_rl.priors`` on those demonstrations, or loaded from a cache
keyed by the demonstrations file's hash, the episode count, the prior kind, its options and
the seed (``~/.cache/kl_rl/priors``; env ``KL_RL_PRIOR_CACHE``, "" turns it off), or loaded
from a folder written by ``kl-rl fit-prior``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax

from kl_rl import demos as demos_lib
from kl_rl import priors

DEFAULT_PRIOR_CACHE = Path.home() / ".cache" / "kl_rl" / "priors"
_REPO_DATA = Path(__file__).resolve().parent.parent / "data"


def default_demos_path(env: str) -> Path:
    """``data/demos/<task>.npz`` in the working directory, else the one shipped with the repository;
    the task's file serves each of its envs (door-zero-one and door-dense read door.npz)."""
    from kl_rl.envs import ENV_NAMES, task_of

    name = task_of(env) if env in ENV_NAMES else env
    local = Path("data") / "demos" / f"{name}.npz"
    return local if local.exists() else _REPO_DATA / "demos" / f"{name}.npz"


def load_demos(env: str, obs_size: int, action_size: int, path: Path | None = None,
               num_demos: int | None = None, pick: str = "first") -> tuple[demos_lib.Demonstrations, Path]:
    """The run's demonstrations, checked against the env's dims; ``num_demos`` episodes of them
    (the first, or with ``pick="best"`` the highest-return ones)."""
    if pick != "first" and num_demos is None:  # a pick of all episodes is no pick: say so, not ignore it
        raise demos_lib.DemosError(f"--demo-pick {pick} chooses among episodes: give --num-demos N too "
                                   "(without it every episode is used)")
    default = default_demos_path(env)
    path = Path(path) if path is not None else default
    if not path.with_suffix(".npz").exists():
        hint = f"make them with `make demos ENV={default.stem}`" if path == default else "check the --demos path"
        raise demos_lib.DemosError(f"no demonstrations at {path}; {hint}")
    data = demos_lib.load(path, obs_size=obs_size, action_size=action_size)
    recorded = data.metadata.get("env")
    from kl_rl.envs import ENV_NAMES, task_of

    if recorded not in (None, env) and not (recorded in ENV_NAMES and task_of(recorded) == task_of(env)):
        raise demos_lib.DemosError(f"{path} holds {recorded} demonstrations, not {env}; pass --demos for {env}")
    if num_demos is not None:
        data = demos_lib.select(data, num_demos, pick)
    return data, path


def cache_key(demos_path: Path, num_demos: int | None, kind: str, options: dict[str, Any], seed: int,
              episodes: list[int] | None = None) -> str:
    """The prior cache entry's name: the demonstrations file's hash, the episodes used (the first
    ``num_demos``, or the listed ``episodes``), the kind, its options and the seed."""
    digest = hashlib.sha256(Path(demos_path).with_suffix(".npz").read_bytes())
    key = {"num_demos": num_demos, "kind": kind, "options": options, "seed": seed}
    if episodes is not None:  # not the first ones: keys of first-episode fits stay as they were
        key["episodes"] = episodes
    digest.update(json.dumps(key, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]


def resolve_cache_dir(cache_dir: str | None) -> Path | None:
    value = os.environ.get("KL_RL_PRIOR_CACHE", str(DEFAULT_PRIOR_CACHE)) if cache_dir is None else cache_dir
    return Path(value).expanduser() if value else None


def get_prior(kind: str, data: demos_lib.Demonstrations, demos_path: Path, num_demos: int | None,
              options: dict[str, Any], seed: int, cache_dir: str | None = None,
              prior_path: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The prior for a run and a record of where it came from: ``prior_path`` if given, else the
    cache entry for these demos and options, else a fresh fit (then cached)."""
    obs_size, action_size = data.observations.shape[1], data.actions.shape[1]
    if prior_path is not None:
        prior, meta = priors.load_with_metadata(prior_path, obs_size=obs_size, action_size=action_size)
        if meta["kind"] != kind:
            raise priors.PriorError(f"the prior at {prior_path} is a {meta['kind']} prior, but this run asks for "
                                    f"{kind}; pass --prior {meta['kind']} or another --prior-path")
        return prior, {"source": str(prior_path), **meta.get("fit", {})}
    options = dict(priors.options_for(kind, **options).__dict__)
    root = resolve_cache_dir(cache_dir)
    episodes = data.metadata.get("episodes")  # set where select picked other than the first episodes
    entry = root / cache_key(demos_path, num_demos, kind, options, seed, episodes) if root is not None else None
    if entry is not None and (entry / "prior.json").exists():
        try:
            prior, meta = priors.load_with_metadata(entry, obs_size=obs_size, action_size=action_size)
            # the entry's key, not its path: records stay free of this machine's home folder
            return prior, {"source": f"cache {entry.name}", **meta.get("fit", {})}
        except priors.PriorError as err:  # a damaged cache entry is refitted below, and overwritten
            print(f"prior: cache entry {entry} unreadable ({err}); refitting it", flush=True)
    prior, info = priors.fit_with_info(kind, jax.random.key(seed), data.observations, data.actions, **options)
    info.pop("bound_trace", None)
    info.update(demos=recorded_path(demos_path), num_episodes=data.num_episodes)  # as the run record names it
    if entry is not None:
        priors.save(prior, entry, info=info)
    return prior, {"source": "fitted", **info}


@dataclasses.dataclass
class Source:
    """Where a run's demonstrations and prior come from (the same options on kl-rl train and sweep)."""

    demos: Path | None = None
    """Demonstrations for the prior and pretraining (default: data/demos/<env>.npz, shipped)."""
    num_demos: int | None = None
    """Use only N demonstration episodes (1: the single-demonstration question)."""
    demo_pick: Literal["first", "best"] = "first"
    """Which N with num-demos: the file's first episodes, or the highest-return ones (on door,
    whose demonstration files may start with a failed episode, the ones that open it soonest)."""
    prior_path: Path | None = None
    """Load the prior from a `kl-rl fit-prior` folder instead of fitting it."""
    prior_options: priors.PriorOptions = dataclasses.field(default_factory=priors.PriorOptions)
    prior_cache: str | None = None
    """Folder caching fitted priors by demos hash and options ("" turns it off); default
    ~/.cache/kl_rl/priors or env KL_RL_PRIOR_CACHE."""


class DemoArrays(NamedTuple):
    """What training takes from the demonstrations: observations [N, o] and actions [N, a] for
    pretraining, and their transitions (``kl_rl.demos.transitions``) where the config keeps them
    in the minibatch (else None). A plain (observations, actions) pair serves where it does not."""

    observations: Any
    actions: Any
    transitions: dict[str, Any] | None = None


def recorded_path(path: str | Path) -> str:
    """A file's path as a run's record names it: relative to the working directory where the file
    lies under it (so a record committed from a checkout names no machine's folders), else as is."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def demos_and_prior(cfg: Any, source: Source | None = None,
                    seed: int = 0) -> tuple[Any, DemoArrays | None, dict[str, Any], float | None]:
    """What a run of ``cfg`` (a TrainConfig) needs besides its settings: (prior, the
    demonstrations' ``DemoArrays``, the config record of where both came from, the
    demonstrations' mean return); Nones for plain SAC. ``source`` None: the shipped
    demonstrations, each prior kind's defaults and the env's preset kernel."""
    cfg = cfg.validate()
    if not cfg.uses_demos:
        return None, None, {}, None
    import numpy as np

    from kl_rl.envs import make_env

    source = source or Source()
    env = make_env(cfg.env, 1)  # for its observation and action sizes
    data, path = load_demos(cfg.env, env.obs_size, env.action_size, source.demos, source.num_demos,
                            source.demo_pick)
    demo_return = float(data.episode_returns.mean())
    extra = {"demos": {"path": recorded_path(path), "num_episodes": data.num_episodes, "num_steps": data.num_steps,
                       "mean_return": demo_return}}
    if "episodes" in data.metadata:  # which episodes, where not the file's first ones
        extra["demos"].update(pick=source.demo_pick, episodes=data.metadata["episodes"])
    prior = None
    if cfg.uses_prior:
        print(f"prior: {cfg.prior} on {data.num_episodes} demonstration episodes of {path} ...", flush=True)
        options = priors.kind_options(source.prior_options, cfg.prior, cfg.env)
        prior, info = get_prior(cfg.prior, data, path, source.num_demos, options, seed, source.prior_cache,
                                source.prior_path)
        seconds = info.get("fit_seconds")
        where = f" in {resolve_cache_dir(source.prior_cache)}" if info["source"].startswith("cache ") else ""
        print(f"prior: {info['source']}{where}" + (f" ({seconds:.1f} s)" if seconds and info["source"] == "fitted"
                                                    else ""), flush=True)
        extra["prior"] = info
    batch = None
    if cfg.demos_in_batch:
        batch = demos_lib.transitions(data, str(path))
        extra["demos"]["transitions"] = int(batch["reward"].shape[0])
    return prior, DemoArrays(np.asarray(data.observations), np.asarray(data.actions), batch), extra, demo_return
