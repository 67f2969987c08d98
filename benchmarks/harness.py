"""Shared benchmark helpers: compile-time accounting, Brax's SAC as a peer, tables and JSON."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jax
from jax._src import monitoring

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_spans: list[tuple[float, float]] | None = None


def _on_span(event: str, start: float, end: float, **_: Any) -> None:
    if _spans is not None and event in _COMPILE_EVENTS:
        _spans.append((start, end))


monitoring.register_event_time_span_listener(_on_span)


@contextmanager
def compile_timer() -> Iterator[dict[str, Any]]:
    """Measures the wall time spent tracing, lowering and compiling (or loading from the
    persistent cache) inside the block: the union of JAX's compile event spans, so nested
    traces are not counted twice. Applies equally to our code and to Brax's. The yielded dict
    gets ``compile_seconds`` at the end; ``so_far()`` reads the total while inside."""
    global _spans
    _spans = []
    out: dict[str, Any] = {"so_far": lambda: _union_seconds(_spans or [])}
    try:
        yield out
    finally:
        out["compile_seconds"] = _union_seconds(_spans)
        _spans = None


def _union_seconds(spans: list[tuple[float, float]]) -> float:
    """Length of the union of (start, end) spans."""
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(spans):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def patch_jax_for_brax_trainer() -> list[str]:
    """Brax 0.14's SAC trainer calls ``jax.device_put_replicated`` / ``device_put_sharded``,
    which jax 0.10 removed from the public namespace. Map them back to the implementations
    still in ``jax._src.api``. Only for running Brax's trainer as a peer; returns what it did."""
    from jax._src import api

    patched = []
    for name in ("device_put_replicated", "device_put_sharded"):
        if not hasattr(jax, name) and hasattr(api, name):
            setattr(jax, name, getattr(api, name))
            patched.append(name)
    return patched


def run_brax_sac(env_name: str, *, num_envs: int, total_steps: int, learning_starts: int, batch_size: int,
                 utd: int, episode_length: int, num_evals: int, eval_episodes: int, seed: int,
                 checkpoint: Path | None = None, deadline: float | None = None) -> dict[str, Any]:
    """Brax's own SAC (``brax.training.agents.sac.train``) on the same MJX env, with the
    reference hyperparameters. Returns per-epoch rates, the final deterministic evaluation and
    compile time.

    With ``checkpoint`` (an ``.npz`` path) the run saves itself after every evaluation and, when
    the file exists, resumes from it (``brax_resume``); with ``deadline`` (``time.monotonic()``)
    it stops after the first evaluation past it and returns ``{"stopped": True, ...}``."""
    import brax
    from brax_resume import BraxResumer, BraxStopped, hooked

    patch_jax_for_brax_trainer()
    from brax import envs
    from brax.training.agents.sac import train as brax_sac

    fingerprint = {"env": env_name, "num_envs": num_envs, "total_steps": total_steps,
                   "learning_starts": learning_starts, "batch_size": batch_size, "utd": utd,
                   "episode_length": episode_length, "num_evals": num_evals, "eval_episodes": eval_episodes,
                   "seed": seed, "brax": brax.__version__}
    resumer = BraxResumer(checkpoint, fingerprint, num_epochs=max(num_evals - 1, 1), deadline=deadline)
    if resumer.skip:
        print(f"brax {env_name} seed {seed}: resuming from {checkpoint} at {resumer.resumed_steps} env steps",
              flush=True)
    env = envs.get_environment(env_name, backend="mjx")
    t0 = time.perf_counter()
    wall_before, compile_before = resumer.meta["wall_seconds"], resumer.meta["compile_seconds"]

    def record(step: int, metrics: dict[str, Any]) -> None:  # printed as it comes: long runs show their curve
        if resumer.skipping:
            return
        metrics = jax.device_get(metrics)
        wall = wall_before + time.perf_counter() - t0
        print(f"brax {env_name} seed {seed}: {step} env steps, eval return "
              f"{float(metrics['eval/episode_reward']):.1f}, {wall:.0f} s", flush=True)
        resumer.record(step, metrics, wall_seconds=wall, compile_seconds=compile_before + compiled_so_far())

    stopped = None
    with compile_timer() as compiled, hooked(resumer):
        compiled_so_far = compiled["so_far"]
        try:
            brax_sac.train(
                environment=env, num_timesteps=total_steps, episode_length=episode_length, num_envs=num_envs,
                num_eval_envs=eval_episodes, learning_rate=3e-4, discounting=0.99, seed=seed,
                batch_size=batch_size, num_evals=num_evals, normalize_observations=False, reward_scaling=1.0,
                tau=5e-3, min_replay_size=learning_starts, max_replay_size=min(total_steps, 1_000_000),
                grad_updates_per_step=utd * num_envs, deterministic_eval=True,
                progress_fn=record,
            )
        except BraxStopped as stop:
            stopped = stop
    progress = resumer.meta["progress"]
    epochs = [m for _, m in progress if "training/sps" in m]
    final = progress[-1][1]
    return {
        "stopped": stopped is not None,
        "wall_seconds": wall_before + time.perf_counter() - t0,
        "compile_seconds": compile_before + compiled["compile_seconds"],
        "epoch_env_steps_per_s": [float(m["training/sps"]) for m in epochs],
        "env_steps": int(progress[-1][0]),
        "eval_return": float(final["eval/episode_reward"]),
        "eval_return_std": float(final.get("eval/episode_reward_std", float("nan"))),
        "curve": [(int(s), float(m["eval/episode_reward"])) for s, m in progress],
    }


def machine() -> dict[str, Any]:
    import os

    return {"platform": platform.platform(), "python": platform.python_version(), "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()], "cpus": os.cpu_count()}


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    tmp.replace(path)
    return path


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[f"{c:,.1f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731,B905
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])
