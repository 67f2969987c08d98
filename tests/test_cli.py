"""The ``kl-rl`` command through a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TINY = ["--algo", "sac", "--env", "pointmass", "--total-steps", "256", "--num-envs", "4",
        "--env-steps-per-epoch", "64", "--learning-starts", "64", "--batch-size", "32", "--episode-length", "20",
        "--eval-every", "128", "--eval-episodes", "2", "--no-progress"]


def kl_rl(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KL_RL_COMPILE_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "kl_rl.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def trained(workdir) -> tuple[subprocess.CompletedProcess, Path]:
    proc = kl_rl("train", *TINY, "--run-name", "tiny", cwd=workdir, cache=workdir / "cache")
    return proc, workdir / "runs" / "tiny"


def test_train_writes_metrics_curve_params(trained):
    proc, run_dir = trained
    assert proc.returncode == 0, proc.stderr
    for name in ("metrics.jsonl", "curve.png", "params.msgpack", "summary.json", "config.json"):
        assert (run_dir / name).stat().st_size > 0, name
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows] == [0, 64, 128, 192, 256]
    assert [r.get("eval_return") is not None for r in rows] == [True, False, True, False, True]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 256 and summary["eval_return"] == rows[-1]["eval_return"]
    assert "eval return" in proc.stdout


def test_existing_run_is_not_overwritten(trained, workdir):
    _, run_dir = trained
    before = (run_dir / "metrics.jsonl").read_bytes()
    proc = kl_rl("train", *TINY, "--run-name", "tiny", cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--overwrite" in proc.stderr
    assert (run_dir / "metrics.jsonl").read_bytes() == before


def test_default_run_names_are_numbered(workdir):
    (workdir / "runs" / "pointmass-sac-s0").mkdir(parents=True)
    proc = kl_rl("train", *TINY, cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "runs" / "pointmass-sac-s0-2" / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--env", "cheetah"],
         "unknown env 'cheetah'; choose one of: ant, door, door-dense, door-zero-one, halfcheetah, hopper, pointmass, "
         "walker2d"),
        (["--algo", "ppo"], "unknown algo 'ppo'; choose one of: nppac, kl, sac, bc-sac"),
        (["--algo", "nppac", "--prior", "mlp"], "algo nppac uses the gp prior"),
        (["--prior", "gaussian"], "unknown prior 'gaussian'"),
        (["--num-envs", "3", "--env-steps-per-epoch", "64"], "must be a multiple of num_envs"),
        (["--warmup-actions", "expert"], "warmup_actions must be one of auto, random, policy (got 'expert')"),
        (["--critic-warmup", "-1", "--mean-action-weight", "-2"],
         "mean_action_weight must be >= 0 (got -2.0); critic_warmup must be >= 0 (got -1)"),
    ],
)
def test_bad_input_is_a_one_line_error(workdir, args, expected):
    proc = kl_rl("train", *args, cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("kl-rl: error:") and expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_help_documents_every_option(workdir):
    proc = kl_rl("train", "--help", cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 0
    for option in ("--env", "--algo", "--total-steps", "--seed", "--num-envs", "--utd", "--run-name",
                   "--compile-cache", "--warmup-actions", "--critic-warmup", "--mean-action-weight", "--kl-in-target"):
        assert option in proc.stdout


def test_demos_trains_expert_then_reuses_it(workdir):
    args = ["demos", "--env", "pointmass", "--expert-steps", "1024", "--episodes", "2", "--episode-length", "20",
            "--critic-lr", "1e-3", "--data-dir", "data", "--no-progress"]
    proc = kl_rl(*args, cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 0, proc.stderr
    assert "demo mean" in proc.stdout
    from kl_rl import demos as demos_lib
    from kl_rl.experts import load_expert

    demos = demos_lib.load(workdir / "data" / "demos" / "pointmass.npz", obs_size=4, action_size=2)
    assert demos.num_episodes == 2 and demos.metadata["expert_train_steps"] == 1024
    expert = load_expert(workdir / "data" / "experts" / "pointmass")
    assert demos.metadata["expert_return"] == expert.summary["eval_return"]
    hparams = json.loads((workdir / "data" / "experts" / "pointmass" / "config.json").read_text())["hparams"]
    assert hparams["critic_lr"] == pytest.approx(1e-3) and hparams["actor_lr"] == pytest.approx(3e-4)
    params_before = (workdir / "data" / "experts" / "pointmass" / "params.msgpack").read_bytes()
    again = kl_rl(*args, cwd=workdir, cache=workdir / "cache")
    assert again.returncode == 0 and "reusing the expert" in again.stdout
    assert (workdir / "data" / "experts" / "pointmass" / "params.msgpack").read_bytes() == params_before


def test_demos_unknown_env(workdir):
    proc = kl_rl("demos", "--env", "pen", cwd=workdir, cache=workdir / "cache")  # the paper's other hand task: not here
    assert proc.returncode == 2 and "unknown env 'pen'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_load_expert_rejects_unfinished_folder(tmp_path):
    from kl_rl.experts import ExpertError, load_expert

    with pytest.raises(ExpertError, match="not a finished kl-rl run folder"):
        load_expert(tmp_path)


@pytest.fixture(scope="module")
def pointmass_demos_file(workdir) -> Path:
    """A small synthetic pointmass demonstrations file: 4 episodes of 30 steps."""
    import numpy as np

    from kl_rl import demos as demos_lib
    from kl_rl.demos import Demonstrations

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(120, 4)).astype(np.float32)
    return demos_lib.save(Demonstrations(
        observations=obs, actions=np.clip(-0.5 * obs[:, :2], -1, 1).astype(np.float32),
        rewards=rng.normal(size=120).astype(np.float32), terminals=np.zeros(120, bool),
        truncations=np.isin(np.arange(120), [29, 59, 89, 119]),
        episode_ids=np.repeat(np.arange(4, dtype=np.int32), 30), episode_lengths=np.full(4, 30, np.int32),
        metadata={"env": "pointmass", "episode_length": 30}), workdir / "pm_demos")


FIT_TINY = ["--compare", "gp", "mlp", "--gp-steps", "5", "--mlp-steps", "50", "--num-inducing", "16",
            "--rollout-episodes", "2", "--holdout-episodes", "1"]


def test_fit_prior_saves_prior_diagnostics_and_pictures(workdir, pointmass_demos_file):
    out = workdir / "priors" / "pm-gp"
    proc = kl_rl("fit-prior", "--demos", str(pointmass_demos_file), "--prior", "gp", *FIT_TINY, "--out", str(out),
                 cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 0, proc.stderr
    from kl_rl import priors

    prior, meta = priors.load_with_metadata(out, obs_size=4, action_size=2)
    assert meta["kind"] == "gp" and meta["fit"]["num_episodes"] == 4
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert set(diagnostics["kinds"]) == {"gp", "mlp"}
    for row in diagnostics["kinds"].values():
        assert {"nll", "rmse", "std_near", "std_far", "mean_action_return", "fit_seconds"} <= set(row)
    for name in ("std_vs_distance.png", "pca_std_map.png", "diagnostics.md"):
        assert (out / name).stat().st_size > 0
    assert "held-out NLL" in proc.stdout
    again = kl_rl("fit-prior", "--demos", str(pointmass_demos_file), *FIT_TINY, "--out", str(out), cwd=workdir,
                  cache=workdir / "cache")
    assert again.returncode == 2 and "--overwrite" in again.stderr


@pytest.mark.parametrize("args, expected", [
    (["--prior", "gaussian"], "unknown prior 'gaussian'"),
    (["--kernel", "cosine"], "unknown kernel 'cosine'"),
    (["--holdout-episodes", "4"], "must be smaller than the number of episodes (4)"),
    (["--demos", "missing.npz"], "missing.npz"),
])
def test_fit_prior_bad_input(workdir, pointmass_demos_file, args, expected):
    proc = kl_rl("fit-prior", "--demos", str(pointmass_demos_file), *args, "--out", str(workdir / "priors" / "bad"),
                 cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


TINY_DEMO_ALGO = [*TINY[2:], "--pretrain-epochs", "2", "--pretrain-batch-size", "16", "--num-inducing", "16",
                  "--gp-steps", "5", "--mlp-steps", "50"]


@pytest.mark.parametrize("algo", [["--algo", "nppac"], ["--algo", "kl", "--prior", "mlp"], ["--algo", "bc-sac"],
                                  ["--algo", "nppac+"]])
def test_every_demo_algo_trains_from_the_cli(workdir, pointmass_demos_file, algo):
    name = "-".join(algo[1::2])
    args = ["train", *algo, *TINY_DEMO_ALGO, "--demos", str(pointmass_demos_file), "--run-name", name,
            "--prior-cache", str(workdir / "prior-cache")]
    proc = kl_rl(*args, cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 0, proc.stderr
    final = json.loads((workdir / "runs" / name / "summary.json").read_text())["final_eval"]
    assert (f"final return {final['mean']:.1f} ({final['episodes']} episodes) vs demonstrations' mean return"
            in proc.stdout), proc.stdout
    rows = [json.loads(line) for line in (workdir / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["pretrain_loss_last"] is not None
    config = json.loads((workdir / "runs" / name / "config.json").read_text())
    assert config["demos"]["num_episodes"] == 4
    if algo[1] == "nppac+":  # the record names what the name resolved to
        ran = config["config"]
        assert (ran["algo"], ran["critic_recipe"], ran["num_critics"], ran["utd"]) == ("nppac", "rlpd", 2, 1)
        assert ran["demos_in_batch"] and ran["critic_layernorm"] and rows[-1]["kl_mean"] is not None
        return
    assert config["config"]["algo"] == algo[1]
    if algo[1] != "bc-sac":
        assert rows[-1]["kl_mean"] is not None and rows[-1]["prior_std_min"] > 0
        assert config["prior"]["source"] == "fitted"
        again = kl_rl(*args[:-4], "--run-name", name + "-again", *args[-2:], cwd=workdir, cache=workdir / "cache")
        assert again.returncode == 0 and "prior: cache" in again.stdout, again.stderr


def test_train_with_missing_demos_is_a_one_line_error(workdir):
    proc = kl_rl("train", "--algo", "nppac", *TINY[2:], "--demos", "nowhere.npz", cwd=workdir,
                 cache=workdir / "cache")
    assert proc.returncode == 2 and "no demonstrations at nowhere.npz" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def swept(workdir) -> tuple[subprocess.CompletedProcess, Path]:
    args = ["sweep", *TINY, "--seeds", "2", "--grid", "actor_lr=1e-3,3e-4", "--sweep-name", "sw"]
    return kl_rl(*args, cwd=workdir, cache=workdir / "cache"), workdir / "runs" / "sw"


def test_sweep_writes_runs_and_summary(workdir, swept):
    proc, sweep_dir = swept
    assert proc.returncode == 0, proc.stderr
    for name in ("actor_lr=0.001-s0", "actor_lr=0.001-s1", "actor_lr=0.0003-s0", "actor_lr=0.0003-s1"):
        assert (sweep_dir / name / "metrics.jsonl").exists() and (sweep_dir / name / "summary.json").exists()
    assert "final return: mean [95% CI]" in (sweep_dir / "summary.md").read_text()
    assert (sweep_dir / "curves.png").stat().st_size > 0
    assert len((sweep_dir / "summary.csv").read_text().splitlines()) == 3
    bad = kl_rl("sweep", *TINY, "--grid", "beta=1,2", cwd=workdir, cache=workdir / "cache")
    assert bad.returncode == 2 and "unknown hyperparameter 'beta'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    # a sweep's run evaluates from its row of the sweep's checkpoint: the same policy as its final one
    run = sweep_dir / "actor_lr=0.001-s1"
    final = kl_rl("evaluate", str(run), "--episodes", "6", cwd=workdir, cache=workdir / "cache")
    ckpt = kl_rl("evaluate", str(run), "--episodes", "6", "--checkpoint", "256", cwd=workdir, cache=workdir / "cache")
    assert final.returncode == 0 and ckpt.returncode == 0, final.stderr + ckpt.stderr
    a, b = (json.loads((run / f"evaluation-{w}-det-n6-s0.json").read_text()) for w in ("final", "ckpt-256"))
    assert a["returns"] == b["returns"] and b["policy"] == "checkpoint 256"
    other = json.loads((sweep_dir / "actor_lr=0.0003-s1" / "summary.json").read_text())["final_eval"]
    assert other["returns"] != json.loads((run / "summary.json").read_text())["final_eval"]["returns"]


def test_compare_groups_runs_and_sweeps_into_one_figure_and_table(trained, swept, workdir):
    (_, run_dir), (_, sweep_dir) = trained, swept
    out = workdir / "cmp" / "fig.png"
    proc = kl_rl("compare", str(run_dir), str(sweep_dir), "--label", "single", "--label", "grid", "--out", str(out),
                 cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0 and "| single | 1 | 256 |" in out.with_suffix(".md").read_text()
    import csv

    rows = {r["label"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert set(rows) == {"single", "grid actor_lr=0.001", "grid actor_lr=0.0003"}
    finals = [json.loads(line)["eval_return"] for name in ("actor_lr=0.001-s0", "actor_lr=0.001-s1")
              for line in (sweep_dir / name / "metrics.jsonl").read_text().splitlines()[-1:]]
    np.testing.assert_allclose(float(rows["grid actor_lr=0.001"]["final_mean"]), np.mean(finals), rtol=1e-6)
    assert rows["grid actor_lr=0.001"]["seeds"] == "2"
    # bad inputs: one line each
    bad = [kl_rl("compare", str(run_dir), "--label", "a", "--label", "b", cwd=workdir, cache=workdir / "cache"),
           kl_rl("compare", str(workdir / "nowhere"), cwd=workdir, cache=workdir / "cache"),
           kl_rl("compare", str(workdir / "cache"), cwd=workdir, cache=workdir / "cache")]
    for proc, message in zip(bad, ("--label needs one label per folder", "no such folder",
                                   "is neither a run folder (config.json) nor a sweep folder"), strict=True):
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_evaluate_writes_every_episode_and_its_statistics(trained, workdir):
    _, run_dir = trained
    proc = kl_rl("evaluate", str(run_dir), "--episodes", "23", "--chunk", "8", "--seed", "4", cwd=workdir,
                 cache=workdir / "cache")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((run_dir / "evaluation-final-det-n23-s4.json").read_text())
    returns = np.asarray(record["returns"])
    assert record["episodes"] == 23 and returns.size == 23 and len(record["lengths"]) == 23
    assert len(set(returns.tolist())) > 1  # the chunks drew different episodes
    np.testing.assert_allclose(record["mean"], returns.mean(), rtol=1e-6)
    np.testing.assert_allclose(record["std_err"], returns.std(ddof=1) / np.sqrt(23), rtol=1e-6)
    assert record["ci_low"] <= record["mean"] <= record["ci_high"] and record["early_ends"] == 0
    assert "± " in proc.stdout and "standard error" in proc.stdout
    stochastic = kl_rl("evaluate", str(run_dir), "--episodes", "23", "--chunk", "8", "--seed", "4", "--stochastic",
                       cwd=workdir, cache=workdir / "cache")
    assert stochastic.returncode == 0, stochastic.stderr
    sampled = json.loads((run_dir / "evaluation-final-stoch-n23-s4.json").read_text())["returns"]
    assert sampled != record["returns"]
    # training's own final evaluation: more episodes than the periodic ones, with its standard error
    final = json.loads((run_dir / "summary.json").read_text())["final_eval"]
    assert final["episodes"] == 50 and len(final["returns"]) == 50 and final["std_err"] > 0
    assert "final evaluation, 50 deterministic episodes" in trained[0].stdout


@pytest.mark.parametrize("args, expected", [
    (["nowhere"], "no run folder at nowhere"),
    (["runs/tiny", "--episodes", "0"], "episodes and chunk must be >= 1"),
    (["runs/tiny", "--checkpoint", "100"], "no checkpoint at 100 env steps"),
    (["runs/tiny", "--env", "door"], "--env door is another task than the run's env pointmass"),
    (["runs/tiny", "--env", "doors"], "unknown env 'doors'"),
    (["runs"], "runs is not a kl-rl run folder (no config.json)"),
])
def test_evaluate_bad_input(trained, workdir, args, expected):
    proc = kl_rl("evaluate", *args, cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, expected", [
    (["train", "--prior", "gp", "--algo", "kl", "--kernel", "cosine", *TINY[2:]], "unknown kernel 'cosine'"),
    (["train", *TINY, "--total-steps", "0"], "total_steps must be >= 1"),
    (["train", *TINY, "--total-steps", "64", "--batch-size", "128"], "larger than the replay buffer can hold"),
    (["train", *TINY, "--checkpoint-every", "-1"], "checkpoint-every must be >= 0"),
    (["train", "--algo", "kl", "--prior", "mlp", *TINY[2:], "--prior-path", "nowhere"], "no prior at nowhere"),
    (["sweep", *TINY, "--seeds", "0"], "seeds must be >= 1"),
    (["train", "--algo", "nppac", *TINY[2:], "--alpha", "-1"], "alpha must be > 0 (got -1.0): it is the KL weight"),
    (["train", *TINY, "--lr", "0", "--critic-lr", "-1e-3"], "lr must be > 0 (got 0.0): it is a learning rate; "
                                                            "critic-lr must be > 0 (got -0.001)"),
    (["train", *TINY, "--gamma", "1"], "gamma must be in (0, 1) (got 1.0)"),
    (["train", *TINY, "--tau", "0"], "tau must be in (0, 1] (got 0.0)"),
    (["sweep", "--algo", "nppac", *TINY[2:], "--grid", "alpha=0.1,0"], "--grid alpha must be > 0 (got 0.0)"),
    (["train", *TINY, "--run-dirr", "x"], "--run-dirr, x; did you mean --runs-dir? (kl-rl train --help"),
    (["train", *TINY, "--alpha", "abc"], "could not convert string to float: 'abc'"),
    (["sweep", *TINY, "--seeds"], "Missing value for argument '--seeds'"),
    (["trian"], "available subcommands: train, demos"),
    (["train", "--algo", "nppac", *TINY[2:], "--demo-pick", "best"], "--demo-pick best chooses among episodes"),
])
def test_bad_input_catalogue(workdir, pointmass_demos_file, args, expected):
    """More of the bad-input catalogue: each a one-line error with exit code 2, no traceback,
    raised before any prior is fitted."""
    demos = ["--demos", str(pointmass_demos_file)] if "--prior" in args or "nppac" in args else []
    proc = kl_rl(*args, *demos, cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "prior: fitted" not in proc.stdout


def test_parse_errors_in_a_terminal_are_one_line_too():
    """tyro draws its report in a box when stderr is a terminal; the box becomes the same line."""
    from kl_rl.cli import one_line_report

    boxed = ("\u256d\u2500 Missing argument \u2500\u2500\u2500\u2500\u256e\n"
             "\u2502 Missing value for argument '--env'. Expected 1 values. \u2502\n"
             "\u2502 " + "\u2500" * 20 + " \u2502\n"
             "\u2502 For full helptext, run kl-rl train --help \u2502\n\u2570" + "\u2500" * 20 + "\u256f\n")
    assert one_line_report(boxed, "train") == ("missing argument: Missing value for argument '--env'. Expected 1 "
                                               "values. (kl-rl train --help lists the options)")
    assert one_line_report("", None) == "could not read the command line (kl-rl --help lists the options)"


def test_help_into_a_closed_pipe_is_quiet(workdir):
    """``kl-rl train --help | head``: the reader leaves before the help is written; no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "kl_rl.cli", "train", "--help"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_debug_flag_shows_the_traceback(workdir):
    proc = kl_rl("train", *TINY, "--total-steps", "0", "--debug", cwd=workdir, cache=workdir / "cache")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "total_steps must be >= 1" in proc.stderr


@pytest.fixture(scope="module")
def bad_files(workdir, pointmass_demos_file) -> dict[str, Path]:
    """A truncated and a corrupt demonstrations file, and a prior fitted on other dims."""
    import jax
    import numpy as np

    from kl_rl import priors

    files = {}
    raw = pointmass_demos_file.read_bytes()
    for name, content in (("truncated", raw[: len(raw) // 2]), ("corrupt", b"PK\x03\x04" + b"\x00garbage" * 50)):
        files[name] = workdir / f"{name}.npz"
        files[name].write_bytes(content)
        files[name].with_suffix(".json").write_text(pointmass_demos_file.with_suffix(".json").read_text())
    rng = np.random.default_rng(0)
    other = priors.fit("mlp", jax.random.key(0), rng.normal(size=(32, 3)), rng.uniform(-1, 1, (32, 2)), steps=5,
                       hidden_sizes=(4,))
    files["other_prior"] = workdir / "other-prior"
    priors.save(other, files["other_prior"])
    return files


@pytest.mark.parametrize("case, expected", [
    ("truncated", "is not a kl_rl demonstrations file"),
    ("corrupt", "is not a kl_rl demonstrations file"),
    ("wrong_env", "observations have 17 dims but the env has 4"),
    ("other_prior", "fitted on observation size 3, but this env has 4"),
])
def test_bad_demos_and_prior_files(workdir, bad_files, case, expected):
    repo = Path(__file__).resolve().parent.parent
    extra = {"truncated": ["--demos", str(bad_files["truncated"])], "corrupt": ["--demos", str(bad_files["corrupt"])],
             "wrong_env": ["--demos", str(repo / "data" / "demos" / "halfcheetah.npz")],
             "other_prior": ["--demos", str(workdir / "pm_demos.npz"), "--prior-path", str(bad_files["other_prior"]),
                             "--prior", "mlp"]}[case]
    algo = ["--algo", "kl"] if case == "other_prior" else ["--algo", "nppac"]
    proc = kl_rl("train", *algo, *TINY[2:], *extra, cwd=workdir, cache=workdir / "cache")
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_compare_reports_success_and_draws_the_demonstrations_line(tmp_path):
    """Door-like runs (hand-written run folders): the success columns and panel, the dashed
    line of the demonstrations' mean return, runs of another env refused."""
    from kl_rl.compare import CompareError, figure, load_groups, table_rows, write_table

    def run(name: str, env: str, success: list[float]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"config": {"env": env, "algo": "nppac"},
                                                        "demos": {"mean_return": -150.0}}))
        rows = [{"epoch": i, "env_steps": 1000 * i, "eval_return": -200 + 100 * s, "eval_success": s}
                for i, s in enumerate(success)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return folder

    groups = load_groups([run("a", "door", [0.2, 0.4, 1.0]), run("b", "door", [0.2, 0.6, 0.8])])
    (row,) = table_rows(groups)
    np.testing.assert_allclose(row["success_final"]["mean"], 0.9)
    np.testing.assert_allclose(row["success_auc"]["mean"], np.mean([(0.3 + 0.7) / 2, (0.4 + 0.7) / 2]))
    assert groups["nppac"].demo_returns == {-150.0}
    text = write_table([row], tmp_path / "t.md", tmp_path / "t.csv")
    assert "final success: mean [95% CI]" in text and "| nppac | 2 | 2,000 |" in text
    assert figure(groups, tmp_path / "f.png").stat().st_size > 0
    with pytest.raises(CompareError, match="compare runs of one env at a time"):
        load_groups([tmp_path / "a", run("c", "hopper", [0.0])], ["x", "y"])
