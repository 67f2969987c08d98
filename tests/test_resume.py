"""Checkpoints and exact resume through the CLI: a run killed with SIGKILL, or stopped with
Ctrl-C, and resumed ends with the same parameters and metrics as an uninterrupted run."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# ~20 epochs of a few hundred updates each: slow enough to be killed in the middle.
SLOW = ["--algo", "sac", "--env", "pointmass", "--total-steps", "1280", "--num-envs", "4",
        "--env-steps-per-epoch", "64", "--learning-starts", "64", "--batch-size", "128", "--utd", "4",
        "--hidden-sizes", "64", "64", "--episode-length", "20", "--eval-every", "256", "--eval-episodes", "2",
        "--checkpoint-every", "1", "--no-progress"]
TIMING = ("epoch_seconds", "env_steps_per_s", "wall_seconds", "pretrain_seconds")


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "kl_rl.cli", *args]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "KL_RL_COMPILE_CACHE": str(cache)}


def _rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def uninterrupted(workdir) -> Path:
    proc = subprocess.run(_cmd("train", *SLOW, "--run-name", "whole"), cwd=workdir, env=_env(workdir / "cache"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return workdir / "runs" / "whole"


def _start_and_stop(workdir: Path, name: str, sig: int, after_rows: int) -> subprocess.Popen:
    proc = subprocess.Popen(_cmd("train", *SLOW, "--run-name", name), cwd=workdir, env=_env(workdir / "cache"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = workdir / "runs" / name / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= after_rows:
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    proc.communicate(timeout=300)
    return proc


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)])
def test_killed_or_interrupted_run_resumes_exactly(workdir, uninterrupted, sig, code):
    name = f"stopped-{sig}"
    proc = _start_and_stop(workdir, name, sig, after_rows=6)
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    run_dir = workdir / "runs" / name
    assert not (run_dir / "summary.json").exists()
    resumed = subprocess.run(_cmd("train", "--resume", str(run_dir), "--no-progress"), cwd=workdir,
                             env=_env(workdir / "cache"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert _rows(run_dir) == _rows(uninterrupted)  # no epoch duplicated or missing, same numbers
    assert (run_dir / "params.msgpack").read_bytes() == (uninterrupted / "params.msgpack").read_bytes()
    assert len(list((run_dir / "checkpoints").iterdir())) <= 3  # only the newest are kept


def test_resume_falls_back_past_a_damaged_latest_checkpoint(workdir, uninterrupted):
    """A latest checkpoint cut short (a full disk, a copy interrupted) is named, moved aside,
    and the previous one resumed: the same final numbers as an uninterrupted run."""
    proc = _start_and_stop(workdir, "damaged", signal.SIGKILL, after_rows=6)
    assert proc.returncode == -signal.SIGKILL
    run_dir = workdir / "runs" / "damaged"
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    latest = run_dir / "checkpoints" / str(steps[-1])
    for f in [f for f in latest.rglob("*") if f.is_file() and f.stat().st_size > 0]:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # every file of it truncated
    resumed = subprocess.run(_cmd("train", "--resume", str(run_dir), "--no-progress"), cwd=workdir,
                             env=_env(workdir / "cache"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"checkpoint {latest} cannot be read" in resumed.stdout
    assert f"resuming from checkpoint {steps[-2]}" in resumed.stdout
    assert (run_dir / "damaged-checkpoints" / str(steps[-1])).is_dir()  # kept, out of the way
    assert _rows(run_dir) == _rows(uninterrupted)
    assert (run_dir / "params.msgpack").read_bytes() == (uninterrupted / "params.msgpack").read_bytes()


def test_a_folder_being_written_is_refused_to_a_second_process(workdir, uninterrupted):
    """While one process trains into a folder, a second one that would write it (--overwrite, or
    --resume) is refused with one line before it compiles; the first run's results are intact."""
    proc = subprocess.Popen(_cmd("train", *SLOW, "--run-name", "busy"), cwd=workdir, env=_env(workdir / "cache"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = workdir / "runs" / "busy" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGSTOP)  # held mid-run (a stopped process keeps its lock) while the others try
    try:
        for args in (["train", *SLOW, "--run-name", "busy", "--overwrite"],
                     ["train", "--resume", str(workdir / "runs" / "busy"), "--no-progress"]):
            second = subprocess.run(_cmd(*args), cwd=workdir, env=_env(workdir / "cache"), capture_output=True,
                                    text=True, timeout=300)
            assert second.returncode == 2, second.stderr
            assert f"is being written by another live process (pid {proc.pid})" in second.stderr
            assert len(second.stderr.strip().splitlines()) == 1
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.communicate(timeout=600)
    assert proc.returncode == 0
    assert _rows(workdir / "runs" / "busy") == _rows(uninterrupted)


@pytest.mark.parametrize("where", ["checkpoint", "metrics"])
def test_a_full_disk_is_one_line_and_loses_nothing(workdir, uninterrupted, monkeypatch, capsys, where):
    """The disk filling up while epoch 5's checkpoint or metrics row is written (ENOSPC, raised
    where orbax or the metrics file would meet it) ends the run with one line that says how to
    continue; the files written before are intact, and the resumed run ends as an uninterrupted
    one (in-process CLI)."""
    from kl_rl import checkpoint
    from kl_rl.cli import main
    from kl_rl.run_folder import MetricsWriter

    real_save, real_write = checkpoint.save, MetricsWriter.write

    def save(mgr, epoch, state, loop):
        if epoch == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(mgr, epoch, state, loop)

    def write(self, row, step):
        if row["epoch"] == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, row, step)

    if where == "checkpoint":
        monkeypatch.setattr(checkpoint, "save", save)
    else:
        monkeypatch.setattr(MetricsWriter, "write", write)
    name = f"full-{where}"
    monkeypatch.chdir(workdir)
    assert main(["train", *SLOW, "--run-name", name, "--compile-cache", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"kl-rl: error: the disk filled up while runs/{name}")
    assert f"continue with --resume runs/{name} (from checkpoint 4)" in err
    run_dir = workdir / "runs" / name
    # a row is written before its epoch's checkpoint
    assert [r["epoch"] for r in _rows(run_dir)] == list(range(6 if where == "checkpoint" else 5))
    assert not list(run_dir.glob("*.tmp"))
    monkeypatch.setattr(checkpoint, "save", real_save)
    monkeypatch.setattr(MetricsWriter, "write", real_write)
    assert main(["train", "--resume", str(run_dir), "--no-progress", "--compile-cache", ""]) == 0
    assert _rows(run_dir) == _rows(uninterrupted)
    assert (run_dir / "params.msgpack").read_bytes() == (uninterrupted / "params.msgpack").read_bytes()


def test_resume_refuses_changed_config_and_missing_checkpoint(workdir, uninterrupted):
    changed = subprocess.run(_cmd("train", "--resume", str(uninterrupted), "--batch-size", "64"), cwd=workdir,
                             env=_env(workdir / "cache"), capture_output=True, text=True, timeout=300)
    assert changed.returncode == 2 and "changed config (--batch-size)" in changed.stderr, changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    empty = workdir / "runs" / "empty"
    empty.mkdir(parents=True)
    (empty / "config.json").write_text((uninterrupted / "config.json").read_text())
    missing = subprocess.run(_cmd("train", "--resume", str(empty)), cwd=workdir, env=_env(workdir / "cache"),
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "has no checkpoint to resume from" in missing.stderr, missing.stderr
    nowhere = subprocess.run(_cmd("train", "--resume", str(workdir / "nowhere")), cwd=workdir,
                             env=_env(workdir / "cache"), capture_output=True, text=True, timeout=300)
    assert nowhere.returncode == 2 and "not a kl-rl run folder" in nowhere.stderr


SWEEP = [a for a in SLOW if a not in ("--total-steps", "1280")] + ["--total-steps", "640", "--seeds", "2"]


def test_killed_sweep_resumes_exactly(workdir):
    whole = subprocess.run(_cmd("sweep", *SWEEP, "--sweep-name", "sweep-whole"), cwd=workdir,
                           env=_env(workdir / "cache"), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen(_cmd("sweep", *SWEEP, "--sweep-name", "sweep-killed"), cwd=workdir,
                            env=_env(workdir / "cache"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = workdir / "runs" / "sweep-killed" / "base-s1" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 4:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    resumed = subprocess.run(_cmd("sweep", "--resume", str(workdir / "runs" / "sweep-killed"), "--no-progress"),
                             cwd=workdir, env=_env(workdir / "cache"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    for run in ("base-s0", "base-s1"):
        a, b = workdir / "runs" / "sweep-whole" / run, workdir / "runs" / "sweep-killed" / run
        assert _rows(b) == _rows(a), run
        assert (b / "params.msgpack").read_bytes() == (a / "params.msgpack").read_bytes()


# The expert of kl-rl demos with its default settings on the toy env: 8 epochs of 1024 transitions,
# the first four fast (no updates before 5,000 transitions), the last four slow enough to interrupt.
DEMOS = ["demos", "--env", "pointmass", "--expert-steps", "8192", "--episodes", "2", "--episode-length", "20",
         "--data-dir", "data", "--no-progress"]


def test_interrupted_expert_training_resumes_through_demos(workdir):
    expert_dir = workdir / "data" / "experts" / "pointmass"
    proc = subprocess.Popen(_cmd(*DEMOS), cwd=workdir, env=_env(workdir / "cache"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = expert_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 6:  # epoch 0 (the anchor) to 5
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-2000:]
    assert "continue with the same kl-rl demos command" in stderr
    assert not (expert_dir / "summary.json").exists() and any((expert_dir / "checkpoints").iterdir())
    stopped_at = len(metrics.read_text().splitlines())

    changed = subprocess.run(_cmd(*[("16384" if a == "8192" else a) for a in DEMOS]), cwd=workdir,
                             env=_env(workdir / "cache"), capture_output=True, text=True, timeout=300)
    assert changed.returncode == 2 and "changed config (config.total_steps" in changed.stderr, changed.stderr
    assert "--retrain" in changed.stderr and len(changed.stderr.strip().splitlines()) == 1
    assert len(metrics.read_text().splitlines()) == stopped_at  # the refused resume lost nothing

    resumed = subprocess.run(_cmd(*DEMOS), cwd=workdir, env=_env(workdir / "cache"), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the interrupted expert training" in resumed.stdout
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(9))  # no epoch lost or repeated
    walls = [r["wall_seconds"] for r in rows]
    assert walls == sorted(walls)  # training time counts on across the resume
    summary = json.loads((expert_dir / "summary.json").read_text())
    assert summary["resumed"] and summary["env_steps"] == 8192
    assert summary["train_seconds_total"] == walls[-1] > summary["train_seconds"]
    assert not (expert_dir / "checkpoints").exists()  # not shipped
    from kl_rl import demos as demos_lib

    demos = demos_lib.load(workdir / "data" / "demos" / "pointmass.npz", obs_size=4, action_size=2)
    assert demos.metadata["expert_train_steps"] == 8192
    assert demos.metadata["expert_train_seconds"] == summary["train_seconds_total"]


def test_run_folders_from_before_a_setting_resume_with_its_default(tmp_path):
    from kl_rl.config import HParams, TrainConfig
    from kl_rl.run_folder import ConfigChangedError, check_resumable, to_python_tree

    def record(hparams: HParams) -> dict:
        return {"config": dataclasses.asdict(TrainConfig(env="pointmass").validate()),
                "hparams": to_python_tree(hparams), "seed": 0, "eval_every": 100}

    old = json.loads(json.dumps(record(HParams.create())))
    del old["hparams"]["entropy_per_dim"]  # written before the setting existed
    (tmp_path / "config.json").write_text(json.dumps(old))
    check_resumable(tmp_path / "config.json", record(HParams.create()), "run", "")  # the default: the same program
    with pytest.raises(ConfigChangedError, match=r"changed config \(hparams.entropy_per_dim\)"):
        check_resumable(tmp_path / "config.json", record(HParams.create(entropy_per_dim=-0.5)), "run", "")
