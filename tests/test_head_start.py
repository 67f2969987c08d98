"""benchmarks/head_start.py: the acceptance arithmetic of its table, its --set parsing and its
one-line refusals (exit 2, before anything is fitted or compiled)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kl_rl.config import TrainConfig

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import head_start  # noqa: E402


def _record(env: str, seed: int, curve: list[float], demo: float = 1000.0) -> dict:
    return {"env": env, "seed": seed, "demo_return": demo,
            "curve": [(5000 * i, value) for i, value in enumerate(curve)]}


def test_summary_applies_the_three_bars_to_every_seed():
    records = [_record("hopper", 0, [850, 720, 900, 1100]), _record("hopper", 1, [900, 800, 950, 1005]),
               _record("ant", 0, [790, 900, 1200, 1300]), _record("ant", 1, [950, 690, 980, 990])]
    rows = {r["env"]: r for r in head_start.summarize(records)}
    assert list(rows) == ["hopper", "ant"]  # the shipped order
    hopper, ant = rows["hopper"], rows["ant"]
    assert hopper["pretrain_mean"] == 875 and hopper["pretrain_min"] == 850 and hopper["pretrain_ok"]
    assert hopper["lowest_after"] == 720 and hopper["floor_ok"]  # 72% >= 70%
    assert hopper["final_mean"] == pytest.approx(1052.5) and hopper["final_ok"]
    assert not ant["pretrain_ok"]  # one seed pretrained to 79%
    assert not ant["floor_ok"]  # one evaluation at 69%
    assert not ant["final_ok"]  # one seed ends below the demonstrations
    assert ant["env_steps"] == 15000 and ant["seeds"] == [0, 1]
    text = head_start.render(head_start.summarize(records))
    assert "| hopper | 2 | 1000 | 875 (88%), min 850 | 720 (72%) |" in text


def test_set_parses_values_like_the_fields():
    parsed = head_start.parse_overrides(["critic_warmup=0", "kl_in_target=False", "mean_action_weight=0",
                                         "warmup_actions=random", "learning_starts=1000"])
    assert parsed == {"critic_warmup": 0, "kl_in_target": False, "mean_action_weight": 0.0,
                      "warmup_actions": "random", "learning_starts": 1000}
    assert isinstance(parsed["mean_action_weight"], float) and parsed["kl_in_target"] is False
    with pytest.raises(ValueError, match="TrainConfig field"):
        head_start.parse_overrides(["no_such_field=1"])
    with pytest.raises(ValueError, match="not a value for kl_in_target"):
        head_start.parse_overrides(["kl_in_target=maybe"])
    typed = head_start.parse_overrides(["critic_recipe=rlpd", "utd=2", "hidden_sizes=64x64", "critic_layernorm=None"])
    assert typed == {"critic_recipe": "rlpd", "utd": 2, "hidden_sizes": (64, 64), "critic_layernorm": None}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / "head_start.py"), *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "no_such_field=1"], "--set takes name=value with a TrainConfig field"),
    (["--envs", "mars"], "unknown env mars"),
    (["--set", "warmup_actions=sometimes"], "warmup_actions must be one of auto, random, policy"),
    (["--set", "critic_warmup=-5"], "critic_warmup must be >= 0"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    proc = _cli(*args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_records_of_other_settings_are_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    config = dataclasses.asdict(TrainConfig(env="hopper", algo="nppac", total_steps=1000).validate())
    other = {**_record("hopper", 0, [1, 2]), "config": config, "alpha": 3.0,
             "settings": {"total_steps": 1000, "eval_every": 5000, "overrides": {}, "alpha": None}}
    (out / "hopper-s0.json").write_text(json.dumps(other))
    proc = _cli("--envs", "hopper", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "holds records that ran other settings (hopper-s0" in proc.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in out.iterdir()) == ["hopper-s0.json"]  # nothing written or run


def test_a_record_is_judged_by_the_program_it_ran():
    args = argparse.Namespace(total_steps=50_000, overrides={}, alpha=None, eval_every=5000)
    default = dataclasses.asdict(head_start.config_for("halfcheetah", args))
    record = {"env": "halfcheetah", "alpha": 0.1, "settings": {"eval_every": 5000}}
    assert not head_start.ran_otherwise({**record, "config": default}, args)
    # Made when halfcheetah's preset warmed up with the policy (recorded as auto before resolution).
    before = {**default, "warmup_actions": "auto", "critic_warmup": None, "kl_in_target": None}
    assert head_start.ran_otherwise({**record, "config": before}, args)
    # The same program asked for explicitly then is the default now.
    explicit = {**default, "warmup_actions": "random", "critic_warmup": 0}
    assert not head_start.ran_otherwise({**record, "config": explicit}, args)
    assert head_start.ran_otherwise({**record, "config": default, "alpha": 0.3}, args)
