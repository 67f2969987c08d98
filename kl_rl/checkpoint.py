"""Checkpoints of a whole training run with orbax: the TrainState (networks, optimizer states,
alpha, prior, replay buffer, env state, PRNG keys, counters) plus the host loop's position.

Orbax writes each checkpoint into a temporary folder and renames it when complete, so a kill
at any moment leaves the previous checkpoints intact; the last ``keep`` are kept. Typed PRNG
keys are stored as their raw key data and wrapped again on restore.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
    """No usable checkpoint where one was expected."""


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(state: Any) -> Any:
    """Keys as raw key data; zero-size arrays (MJX keeps some, e.g. ``act`` of models without
    actuator state), which orbax refuses, as a scalar placeholder."""

    def one(x):
        if _is_key(x):
            return jax.random.key_data(x)
        if np.size(x) == 0:
            return np.zeros((), np.asarray(x).dtype)
        return x

    return jax.tree.map(one, state)


def _from_storable(stored: Any, template: Any) -> Any:
    def one(s, t):
        if _is_key(t):
            return jax.random.wrap_key_data(s)
        if np.size(t) == 0:
            return np.zeros(np.shape(t), np.asarray(t).dtype)
        return s

    return jax.tree.map(one, stored, template)


def manager(run_dir: Path, keep: int = 3) -> ocp.CheckpointManager:
    """The run's orbax manager: synchronous saves, the newest ``keep`` kept, and the temporary
    folder of a save that a kill interrupted removed (it is incomplete by definition; orbax does
    that in the background from creation and waits for it before the first save)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(Path(run_dir).absolute() / "checkpoints", options=options,
                                 item_names=("state", "loop"))


def save(mgr: ocp.CheckpointManager, epoch: int, state: Any, loop: dict[str, Any]) -> None:
    """Writes checkpoint ``epoch``: the state and the host loop's position (JSON)."""
    mgr.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(_to_storable(jax.device_get(state))),
                                            loop=ocp.args.JsonSave(loop)))
    mgr.wait_until_finished()


def all_epochs(run_dir: Path) -> list[int]:
    """The epochs of ``run_dir``'s checkpoints, newest first (none: empty)."""
    if not (Path(run_dir) / "checkpoints").exists():
        return []
    return sorted(manager(run_dir).all_steps(), reverse=True)


def _first_line(err: BaseException) -> str:
    """An exception as one short line (orbax's and tensorstore's messages run to many)."""
    return f"{err.__class__.__name__}: {(str(err).strip().splitlines() or [''])[0][:160]}"


def restore_raw(run_dir: Path, epoch: int) -> Any:
    """Checkpoint ``epoch``'s state as stored (nested dicts of numpy arrays, keys as raw key
    data), without a template: for reading a part of it, e.g. the actor's parameters."""
    folder = Path(run_dir).absolute() / "checkpoints" / str(epoch) / "state"
    try:
        return ocp.StandardCheckpointer().restore(folder)
    except Exception as err:  # noqa: BLE001 - orbax and tensorstore raise many kinds on damaged files
        raise CheckpointError(f"checkpoint {folder.parent} cannot be read ({_first_line(err)})") from None


def latest_epoch(run_dir: Path) -> int | None:
    folder = Path(run_dir) / "checkpoints"
    if not folder.exists():
        return None
    return manager(run_dir).latest_step()


DAMAGED = "damaged-checkpoints"  # in the run folder: checkpoints that could not be read, moved aside


def restore(run_dir: Path, template: Any, epoch: int | None = None,
            say: Callable[[str], None] = print) -> tuple[Any, dict[str, Any]]:
    """Checkpoint ``epoch`` of ``run_dir`` as (state shaped like ``template``, loop position).
    Default: the latest readable one. A checkpoint that cannot be read (truncated or corrupted
    files, e.g. by a full disk or a copy cut short) is named through ``say``, moved aside into
    ``<run_dir>/damaged-checkpoints/`` (kept, and out of the way of the saves that follow) and
    the previous one tried; none readable is a one-line CheckpointError."""
    if epoch is not None:
        return _restore(run_dir, template, epoch)
    folder = Path(run_dir).absolute() / "checkpoints"
    steps = all_epochs(run_dir)
    if not steps:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from; start a new run instead of --resume")
    for i, step in enumerate(steps):
        try:
            return _restore(run_dir, template, step)
        except Exception as err:  # noqa: BLE001 - orbax and tensorstore raise many kinds on damaged files
            aside = Path(run_dir).absolute() / DAMAGED / str(step)
            aside.parent.mkdir(exist_ok=True)
            shutil.rmtree(aside, ignore_errors=True)
            (folder / str(step)).rename(aside)
            then = f"resuming from checkpoint {steps[i + 1]}" if i + 1 < len(steps) else "no older checkpoint"
            say(f"checkpoint {folder / str(step)} cannot be read ({_first_line(err)}); moved to {aside}; {then}")
    raise CheckpointError(f"no readable checkpoint in {folder} (the damaged ones are in {Path(run_dir) / DAMAGED}); "
                          "start a new run instead of --resume")


def _restore(run_dir: Path, template: Any, epoch: int) -> tuple[Any, dict[str, Any]]:
    mgr = manager(run_dir)
    abstract = _to_storable(jax.device_get(template))
    restored = mgr.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                          loop=ocp.args.JsonRestore()))
    if not isinstance(restored["loop"], dict) or "epoch" not in restored["loop"]:
        raise CheckpointError(f"its loop position is missing (got {restored['loop']!r})")
    return _from_storable(restored["state"], template), restored["loop"]


def stored_shape(run_dir: Path, path: tuple[str, ...], epoch: int | None = None) -> tuple[int, ...]:
    """The shape of one array of checkpoint ``epoch`` (default: the latest) of ``run_dir``,
    named by its path of field names in the state (e.g. the demonstrations buffer's rewards),
    read from the checkpoint's metadata without restoring it."""
    root = Path(run_dir).absolute() / "checkpoints"
    steps = [epoch] if epoch is not None else all_epochs(run_dir)
    if not steps:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from; start a new run instead of --resume")
    for step in steps:  # the newest whose metadata reads (the shape is the same in every checkpoint)
        try:
            tree = ocp.StandardCheckpointer().metadata(root / str(step) / "state")
            tree = getattr(tree, "item_metadata", tree)
            for name in path:
                tree = tree[name]
            return tuple(tree.shape)
        except Exception:  # noqa: BLE001, S112 - a damaged checkpoint: restore() names it and moves it aside
            continue
    raise CheckpointError(f"no readable checkpoint in {root}; start a new run instead of --resume")
