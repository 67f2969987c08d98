"""Everything a run folder holds, in one place: its layout, ``config.json``, the metrics
(``metrics.jsonl`` and TensorBoard), ``summary.json``, ``params.msgpack``, atomic writes, and the
checks that decide whether a folder may be written or resumed.

A run folder::

    config.json      the settings (TrainConfig, HParams, seed, eval_every; where demos and prior came from)
    metrics.jsonl    one row per epoch (step 0 first), evaluations in their rows
    tb/              TensorBoard events of the same rows (kl-rl train)
    curve.png        the learning curve
    params.msgpack   final actor and critic parameters (flax msgpack)
    summary.json     final evaluation, counts and timings
    checkpoints/     orbax checkpoints of the whole training state (a sweep keeps them in the sweep folder)
    prior/           the run's copy of pi0 (likewise)

A sweep folder holds ``sweep.json`` (its record), ``checkpoints/``, ``prior/`` and one run folder per run.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

RESULT_FILES = ("metrics.jsonl", "params.msgpack", "curve.png", "summary.json", "checkpoints", "prior")


class RunDirExistsError(FileExistsError):
    """The run directory already holds results that a new run would overwrite."""


class RunDirBusyError(FileExistsError):
    """Another live process is writing the run (or sweep) folder."""


class DiskFullError(OSError):
    """The disk (or a quota, or a file size limit) ran out while a run's files were written."""


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk filled up (also when a library wrapped the OSError)."""
    if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
        return True
    text = str(err)
    return "No space left on device" in text or "Disk quota exceeded" in text or "File too large" in text


class ConfigChangedError(ValueError):
    """A resume with settings that differ from the folder's own (or of a folder that is not a run)."""


def to_python(value: Any) -> Any:
    """JSON-safe scalar or list: arrays become lists, NaN and inf become None."""
    if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
        value = np.asarray(value).tolist()
    if isinstance(value, list):
        return [to_python(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_python_tree(tree: Any) -> Any:
    """A pytree of arrays (e.g. HParams) as a dict of Python numbers, for JSON."""
    if dataclasses.is_dataclass(tree):
        return {f.name: to_python_tree(getattr(tree, f.name)) for f in dataclasses.fields(tree)}
    return to_python(np.asarray(tree))


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Writes ``path`` through a temporary file renamed when complete: a kill or a full disk
    leaves the old file (and no temporary one)."""
    _write_atomic(path, json.dumps(payload, indent=2, default=str).encode())


def write_text_atomic(path: Path, text: str) -> None:
    """``write_json_atomic`` for text (a generated report or README): all of it or the old file."""
    _write_atomic(path, text.encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(data)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


LOCK_FILE = ".writer.lock"  # in a run or sweep folder: locked (flock) by the process writing it
_CLAIMS: dict[Path, Any] = {}  # folder -> the open lock file this process holds


def claim(folder: Path) -> None:
    """Takes the folder for this process (an exclusive ``flock`` on ``<folder>/.writer.lock``,
    released by ``release`` or when the process ends, even by SIGKILL), or refuses with one line
    when another live process holds it: two runs' metrics and checkpoints must never interleave."""
    import fcntl
    import os

    folder = Path(folder).absolute()
    if folder in _CLAIMS:
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunDirBusyError(f"{folder} is being written by another live process (pid {holder}); wait for it to "
                              "finish or stop it, or pass another --run-name") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _CLAIMS[folder] = handle


def release(folder: Path) -> None:
    """Gives up a folder taken by ``claim`` (nothing if this process does not hold it)."""
    handle = _CLAIMS.pop(Path(folder).absolute(), None)
    if handle is not None:
        handle.close()


def prepare_run_dir(run_dir: Path, overwrite: bool) -> Path:
    """Creates ``run_dir`` and claims it for this process; refuses to reuse one with results
    unless ``overwrite``, and one that another live process is writing."""
    run_dir = Path(run_dir)
    existing = [name for name in RESULT_FILES if (run_dir / name).exists()]
    if existing and not overwrite:
        raise RunDirExistsError(
            f"run directory {run_dir} already has results ({', '.join(existing)}); "
            "pass a new --run-name or --overwrite"
        )
    claim(run_dir)
    for name in existing:
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    for tb_file in (run_dir / "tb").glob("events.*") if existing else ():
        tb_file.unlink()
    return run_dir


def fresh_run_dir(runs_dir: Path, base: str) -> Path:
    """``runs_dir/base``, or ``base-2``, ``base-3``, ... : the first that does not exist yet."""
    candidate, n = runs_dir / base, 1
    while candidate.exists():
        n += 1
        candidate = runs_dir / f"{base}-{n}"
    return candidate


def save_params(params: dict[str, Any], path: Path) -> Path:
    """Writes a run's ``{"actor": ..., "critics": ...}`` parameters (flax msgpack), atomically."""
    import jax
    from flax import serialization

    _write_atomic(path, serialization.to_bytes(jax.device_get(params)))
    return path


def run_record(cfg: Any, hparams: Any, seed: int, eval_every: int) -> dict[str, Any]:
    """What config.json says about the program (the part a resume must match), JSON-normalized."""
    return json.loads(json.dumps({"config": dataclasses.asdict(cfg), "hparams": to_python_tree(hparams),
                                  "seed": seed, "eval_every": eval_every}))


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The settings of ``current`` that differ from a saved record (config.json or sweep.json).
    ``config`` and ``hparams`` are compared field by field; a field a folder predates counts as
    its default (``config_from_json`` gives old folders the settings they ran with)."""
    from kl_rl.config import HParams, config_from_json

    saved = {**saved, "config": dataclasses.asdict(config_from_json(saved.get("config", {})).validate())}
    saved = json.loads(json.dumps(saved))  # as recorded today: old folders' defaults and presets resolved
    defaults = {"hparams": to_python_tree(HParams.create())}
    changed = [f"{section}.{k}" for section in ("config", "hparams") for k in current.get(section, {})
               if saved.get(section, {}).get(k, defaults.get(section, {}).get(k)) != current[section][k]]
    return changed + [k for k in current if k not in ("config", "hparams") and saved.get(k) != current[k]]


def read_record(record_path: Path, what: str) -> dict[str, Any]:
    """A folder's record (config.json of a run, sweep.json of a sweep); one line when it is missing."""
    if not record_path.exists():
        raise ConfigChangedError(f"{record_path.parent} is not a kl-rl {what} folder (no {record_path.name}); "
                                 "check the --resume path")
    return json.loads(record_path.read_text())


def check_resumable(record_path: Path, current: dict[str, Any], what: str, if_changed: str) -> None:
    """Refuses, with one line, to resume a folder without its record or with changed settings."""
    folder = record_path.parent
    changed = changed_settings(read_record(record_path, what), json.loads(json.dumps(current)))
    if changed:
        raise ConfigChangedError(f"cannot resume {folder} with a changed config ({', '.join(changed)}); {if_changed}")


def truncate_metrics(path: Path, epoch: int) -> list[dict[str, Any]]:
    """Keeps the rows of epochs <= ``epoch`` (those the checkpoint covers), rewritten atomically."""
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by the kill: the checkpoint predates it
            continue
    rows = [r for r in rows if r["epoch"] <= epoch]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)
    return rows


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class MetricsWriter:
    """Appends rows to ``<run_dir>/metrics.jsonl`` and scalars to ``<run_dir>/tb``."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, purge_step: int | None = None):
        self.path = run_dir / "metrics.jsonl"
        self._file = self.path.open("a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)

    def write(self, row: dict[str, Any], step: int) -> None:
        row = {k: to_python(v) for k, v in row.items()}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
