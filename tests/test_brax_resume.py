"""Brax's SAC made resumable (benchmarks/brax_resume.py): a run stopped after its first
evaluation and resumed from the checkpoint ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from brax_resume import BraxCheckpointError, BraxResumer, load_checkpoint  # noqa: E402

# Brax's smallest MJX task, two training epochs after the prefill.
TINY = dict(num_envs=4, total_steps=700, learning_starts=100, batch_size=32, utd=1, episode_length=40,
            num_evals=3, eval_episodes=2, seed=0)


# One Brax run per fresh process, as a user reruns the command; a shared compile cache makes the
# second and third cheap without touching this test session's jax config.
_RUN = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from harness import run_brax_sac
from kl_rl import compile_cache
compile_cache.enable(sys.argv[2])
deadline = time.monotonic() - 1.0 if sys.argv[4] == "stop" else None
out = run_brax_sac("inverted_pendulum", **json.loads(sys.argv[5]), checkpoint=Path(sys.argv[3]), deadline=deadline)
print("RESULT " + json.dumps(out))
"""


def _brax_run(cache: Path, checkpoint: Path, mode: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _RUN, str(BENCHMARKS), str(cache), str(checkpoint), mode,
                           json.dumps(TINY)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def brax_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """An uninterrupted run, and a run stopped at its first evaluation then resumed in a new
    process; each checkpoints into its own file."""
    root = tmp_path_factory.mktemp("brax")
    cache, straight_ckpt, split_ckpt = root / "cache", root / "straight.npz", root / "split.npz"
    straight = _brax_run(cache, straight_ckpt, "run")
    stopped = _brax_run(cache, split_ckpt, "stop")
    stopped_meta, _ = load_checkpoint(split_ckpt)
    resumed = _brax_run(cache, split_ckpt, "run")
    return {"straight": straight, "stopped": stopped, "stopped_meta": stopped_meta, "resumed": resumed,
            "straight_ckpt": straight_ckpt, "split_ckpt": split_ckpt}


def _without_timing(progress: list) -> list:
    timing = ("sps", "walltime", "time")  # wall clocks and rates, the only metrics allowed to differ
    return [(step, {k: v for k, v in metrics.items() if not k.endswith(timing)}) for step, metrics in progress]


def test_deadline_stops_after_first_evaluation_with_a_checkpoint(brax_runs: dict) -> None:
    stopped, meta = brax_runs["stopped"], brax_runs["stopped_meta"]
    assert stopped["stopped"] and not brax_runs["straight"]["stopped"]
    assert len(stopped["curve"]) == 2 and meta["epochs_done"] == 1  # initial evaluation + one epoch
    assert stopped["curve"] == brax_runs["straight"]["curve"][:2]


def test_resumed_run_matches_uninterrupted_run_exactly(brax_runs: dict) -> None:
    straight, resumed = brax_runs["straight"], brax_runs["resumed"]
    assert not resumed["stopped"]
    assert resumed["curve"] == straight["curve"]
    assert resumed["env_steps"] == straight["env_steps"] >= TINY["total_steps"]
    meta_a, leaves_a = load_checkpoint(brax_runs["straight_ckpt"])
    meta_b, leaves_b = load_checkpoint(brax_runs["split_ckpt"])
    assert meta_a["epochs_done"] == meta_b["epochs_done"] == TINY["num_evals"] - 1
    # every training metric (critic, actor, alpha losses) of every epoch, not only the returns
    assert _without_timing(meta_b["progress"]) == _without_timing(meta_a["progress"])
    assert len(leaves_a) == len(leaves_b)
    for a, b in zip(leaves_a, leaves_b, strict=True):  # parameters, optimizer states, replay buffer, envs
        np.testing.assert_array_equal(a, b)
    # the resumed run reports the cost of both sittings
    assert resumed["wall_seconds"] > brax_runs["stopped"]["wall_seconds"]


def test_checkpoint_of_other_settings_is_refused(brax_runs: dict) -> None:
    meta, _ = load_checkpoint(brax_runs["split_ckpt"])
    other = dict(meta["fingerprint"], seed=1)
    with pytest.raises(BraxCheckpointError, match="was written for seed=0, not seed=1; .* delete it to start over"):
        BraxResumer(brax_runs["split_ckpt"], other, num_epochs=2)


def test_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "brax.npz"
    np.savez(bad, weights=np.zeros(3))
    with pytest.raises(BraxCheckpointError, match="is not a Brax SAC checkpoint"):
        BraxResumer(bad, dict(TINY), num_epochs=2)
    bad.write_text(json.dumps({"not": "npz"}))
    with pytest.raises(BraxCheckpointError, match="is not a Brax SAC checkpoint"):
        load_checkpoint(bad)


def test_learning_cli_refuses_a_deadline_without_a_checkpoint_dir() -> None:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "learning.py"), "--impls", "brax",
                           "--stop-after-minutes", "5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--stop-after-minutes needs --brax-checkpoint-dir" in proc.stderr.strip().splitlines()[-1]
