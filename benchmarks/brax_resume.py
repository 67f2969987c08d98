"""Checkpoint and resume Brax's own SAC trainer, which has no resume of its own.

``brax.training.agents.sac.train`` can restore policy parameters but not the critics, the
optimizer states, the temperature or the replay buffer, so a long baseline (1M+ env steps on a
CPU) had to finish inside one process. This module makes it resumable without copying Brax's
code: while ``train`` runs, it wraps the ``jax.pmap`` of Brax's ``training_epoch`` and Brax's
``Evaluator.run_evaluation``.

- After each evaluation it writes the state Brax's epoch returned (training state, env state,
  replay buffer) with the evaluation curve so far to one ``.npz`` file, atomically.
- Started again with the same settings, Brax replays its own key splits: the prefill runs as
  usual, the epochs that the checkpoint already holds are skipped (their evaluations only split
  the evaluator's key, as a real one would), and the checkpointed state is handed to the first
  epoch that still has to run. So a resumed run draws the same keys as one that never stopped,
  and on the same machine ends with the same numbers (``tests/test_brax_resume.py``).
- With a deadline, the run stops cleanly after the first evaluation past it.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jax
import numpy as np


class BraxStopped(Exception):
    """Raised out of Brax's ``train`` when the deadline passed; the checkpoint holds the run."""

    def __init__(self, env_steps: int, path: Path) -> None:
        super().__init__(f"stopped at {env_steps} env steps; checkpoint {path}")
        self.env_steps = env_steps
        self.path = path


class BraxCheckpointError(ValueError):
    """A checkpoint that cannot continue this run (other settings, other shapes, not ours)."""


def load_checkpoint(path: Path) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Reads ``(meta, leaves)`` from a checkpoint written by :class:`BraxResumer`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            leaves = [data[f"leaf_{i:04d}"] for i in range(meta["num_leaves"])]
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as err:
        raise BraxCheckpointError(f"{path} is not a Brax SAC checkpoint ({err}); delete it to start over") from err
    return meta, leaves


class BraxResumer:
    """Hooks that checkpoint one ``brax.training.agents.sac.train`` call and resume it.

    ``fingerprint`` names the settings a checkpoint must match (env, budget, seed, ...);
    ``num_epochs`` is Brax's ``max(num_evals - 1, 1)``; ``deadline`` is a ``time.monotonic()``
    value or None."""

    def __init__(self, path: Path | None, fingerprint: dict[str, Any], num_epochs: int,
                 deadline: float | None = None) -> None:
        self.path, self.fingerprint, self.num_epochs, self.deadline = path, fingerprint, num_epochs, deadline
        self.meta: dict[str, Any] = {"epochs_done": 0, "progress": [], "wall_seconds": 0.0, "compile_seconds": 0.0}
        self._saved_leaves: list[np.ndarray] | None = None
        if path is not None and path.exists():
            meta, leaves = load_checkpoint(path)
            theirs = meta.get("fingerprint", {})
            if theirs != fingerprint:
                keys = sorted(k for k in {*theirs, *fingerprint} if theirs.get(k) != fingerprint.get(k))
                was = ", ".join(f"{k}={theirs.get(k)}" for k in keys)
                now = ", ".join(f"{k}={fingerprint.get(k)}" for k in keys)
                raise BraxCheckpointError(f"{path} was written for {was}, not {now}; "
                                          "rerun with its settings or delete it to start over")
            self.meta, self._saved_leaves = meta, leaves
        self.skip = int(self.meta["epochs_done"])  # epochs the checkpoint already holds
        self.epochs = 0  # training_epoch calls seen in this process
        self._latest: tuple[Any, Any, Any] | None = None

    @property
    def resumed_steps(self) -> int:
        return int(self.meta["progress"][-1][0]) if self.meta["progress"] else 0

    @property
    def skipping(self) -> bool:
        """True while Brax replays epochs (and their evaluations) that the checkpoint holds."""
        return self.skip > 0 and self.epochs <= self.skip

    def wrap_training_epoch(self, pmapped: Any) -> Any:
        def training_epoch(training_state: Any, env_state: Any, buffer_state: Any, key: jax.Array) -> Any:
            self.epochs += 1
            if self.epochs < self.skip:  # its key split has happened; its work is in the checkpoint
                time.sleep(1e-3)  # Brax divides by this call's wall time
                return training_state, env_state, buffer_state, {}
            if self.epochs == self.skip:
                state = self._restore((training_state, env_state, buffer_state))
                return (*state, {})
            out = pmapped(training_state, env_state, buffer_state, key)
            self._latest = out[:3]
            return out

        return training_epoch

    def _restore(self, like: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
        leaves, treedef = jax.tree_util.tree_flatten(like)
        saved = self._saved_leaves
        assert saved is not None
        if len(saved) != len(leaves) or any(s.shape != np.shape(x) or s.dtype != x.dtype
                                            for s, x in zip(saved, leaves, strict=True)):
            raise BraxCheckpointError(f"{self.path} holds a state of another shape than this Brax run's; "
                                      "delete it to start over")
        self._saved_leaves = None
        weak = tuple(bool(getattr(x, "weak_type", False)) for x in leaves)

        def retype(*xs: jax.Array) -> tuple[jax.Array, ...]:
            # .npz drops JAX's weak types; put them back, or Brax's epoch recompiles for the new signature
            return tuple(_as_weak(x) if w else x for x, w in zip(xs, weak, strict=True))

        replicated = jax.pmap(retype)(*saved)  # sharded like pmap outputs, as Brax's _unpmap expects
        return jax.tree_util.tree_unflatten(treedef, list(replicated))

    def record(self, env_steps: int, metrics: dict[str, Any], wall_seconds: float, compile_seconds: float) -> None:
        """Called from Brax's progress_fn after each evaluation that is not being skipped (see
        ``skipping``): appends it, checkpoints, and raises :class:`BraxStopped` when past the
        deadline with epochs left."""
        self.meta["progress"].append([int(env_steps), {k: float(v) for k, v in metrics.items()}])
        if self._latest is None:  # the initial evaluation: no state yet
            return
        self.meta.update(epochs_done=self.epochs, wall_seconds=wall_seconds, compile_seconds=compile_seconds)
        if self.path is not None:
            self._write(jax.tree_util.tree_leaves(self._latest))
        if self.deadline is not None and time.monotonic() > self.deadline and self.epochs < self.num_epochs:
            raise BraxStopped(int(env_steps), self.path)

    def _write(self, leaves: list[Any]) -> None:
        assert self.path is not None
        arrays = {f"leaf_{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}
        meta = {**self.meta, "fingerprint": self.fingerprint, "num_leaves": len(arrays)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, self.path)


def _as_weak(x: jax.Array) -> jax.Array:
    """The same values, weakly typed (jax has no public spelling of this; falls back to strong)."""
    try:
        from jax._src.lax.lax import _convert_element_type
    except ImportError:
        return x
    return _convert_element_type(x, np.dtype(x.dtype), weak_type=True)


@contextmanager
def hooked(resumer: BraxResumer) -> Iterator[None]:
    """Installs the resumer's hooks around one Brax ``train`` call: the ``jax.pmap`` of a
    function named ``training_epoch`` is wrapped, and evaluations of skipped epochs only split
    the evaluator's key (what ``Evaluator.run_evaluation`` does first)."""
    from brax.training import acting

    real_pmap, real_eval = jax.pmap, acting.Evaluator.run_evaluation

    def pmap(fun: Any, *args: Any, **kwargs: Any) -> Any:
        pmapped = real_pmap(fun, *args, **kwargs)
        return resumer.wrap_training_epoch(pmapped) if getattr(fun, "__name__", "") == "training_epoch" else pmapped

    def run_evaluation(self: Any, policy_params: Any, training_metrics: Any, aggregate_episodes: bool = True) -> Any:
        if resumer.skipping:
            self._key, _ = jax.random.split(self._key)
            return {}
        return real_eval(self, policy_params, training_metrics, aggregate_episodes)

    jax.pmap, acting.Evaluator.run_evaluation = pmap, run_evaluation
    try:
        yield
    finally:
        jax.pmap, acting.Evaluator.run_evaluation = real_pmap, real_eval
