"""The experiment scripts in quick mode, through a subprocess as a user runs them (the notebooks
are in test_notebooks.py, a file of their own so pytest-xdist can run them beside these)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KL_RL_PRIOR_CACHE": str(out / "prior-cache")}
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script), "--quick", "--out", str(out), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_pathology_shows_inverse_square_growth(tmp_path):
    _run("pathology.py", tmp_path)
    record = json.loads((tmp_path / "pathology.json").read_text())
    for name, slope in record["slopes"].items():
        assert -2.1 < slope < -1.9, (name, slope)
    rows = record["rows"]
    # the project's estimator agrees with the closed form (Gaussian policy) within 5 standard errors
    for row in rows:
        assert abs(row["kl_estimate"] - row["kl_closed"]) < 5 * row["kl_estimate_se"] + 1e-9
    assert (tmp_path / "pathology.png").stat().st_size > 0
    assert "slope" in (tmp_path / "table.md").read_text()


def test_variance_gp_grows_away_from_the_demonstrations(tmp_path):
    _run("variance.py", tmp_path)
    kinds = json.loads((tmp_path / "variance.json").read_text())["envs"]["pointmass"]["kinds"]
    assert set(kinds) == {"gp", "mlp", "ensemble", "dropout", "floor"}
    ratio = {k: row["std_far"] / row["std_near"] for k, row in kinds.items()}
    assert ratio["gp"] > 1.5 and ratio["gp"] > ratio["mlp"], ratio
    for name in ("std_vs_distance.png", "table.md", "pointmass/pca_std_map.png"):
        assert (tmp_path / name).exists(), name


def test_priors_and_single_demo_run_through_the_sweep_runner(monkeypatch, tmp_path):
    _run("priors.py", tmp_path / "priors", "--labels", "nppac", "kl:mlp", "sac")
    record = json.loads((tmp_path / "priors" / "priors.json").read_text())
    summary = record["envs"]["pointmass"]
    assert set(summary) == {"nppac", "kl:mlp", "sac"}
    for label, rec in summary.items():
        assert rec["final"]["n"] == 2 and np.isfinite(rec["final"]["mean"]), label
    assert summary["kl:mlp"]["prior_std_min"] < summary["nppac"]["prior_std_min"]  # the MLP's variance collapses
    nppac_dir = tmp_path / "priors" / "runs" / "pointmass" / "nppac"
    assert (nppac_dir / "summary.csv").exists()
    # the machine-readable table: one row per (experiment, env, label), the table's own numbers
    table = list(csv.DictReader((tmp_path / "priors" / "summary.csv").open()))
    assert [(r["experiment"], r["env"], r["label"]) for r in table] == [
        ("priors", "pointmass", label) for label in ("kl:mlp", "nppac", "sac")]
    np.testing.assert_allclose(float(table[1]["final_mean"]), summary["nppac"]["final"]["mean"])
    assert table[1]["seeds"] == "2" and table[1]["env_steps"] == "512" and table[1]["success_final_mean"] == ""
    # a rerun reads finished labels back instead of training them again (from their committed
    # record, even where runs/ is gone, as in a fresh clone), and continues a label stopped part-way
    # from its latest checkpoint (here: the one after pretraining) to the same numbers
    records = tmp_path / "priors" / "records" / "pointmass"
    assert (records / "sac" / "summary.csv").exists() and (records / "nppac" / "base-s1" / "metrics.jsonl").exists()
    final_eval = json.loads((records / "sac" / "base-s1" / "final_eval.json").read_text())  # the 50-episode one
    assert final_eval == json.loads((tmp_path / "priors" / "runs" / "pointmass" / "sac" / "base-s1" /
                                     "summary.json").read_text())["final_eval"]
    shutil.rmtree(tmp_path / "priors" / "runs" / "pointmass" / "sac")
    uninterrupted = (nppac_dir / "base-s1" / "metrics.jsonl").read_text().splitlines()
    (nppac_dir / "summary.csv").unlink()
    (records / "nppac" / "summary.csv").unlink()
    final_step = max(int(p.name) for p in (nppac_dir / "checkpoints").iterdir() if p.name.isdigit())
    shutil.rmtree(nppac_dir / "checkpoints" / str(final_step))
    proc = _run("priors.py", tmp_path / "priors", "--labels", "nppac", "kl:mlp", "sac")
    assert "runs per static choice" not in proc.stdout
    assert proc.stdout.count("resuming") == 1 and "nppac: resuming" in proc.stdout
    assert "sac: read back from" in proc.stdout and "kl:mlp: read back from" in proc.stdout
    assert (records / "nppac" / "summary.csv").exists()  # the resumed label's record is kept again
    (sac_line,) = [line for line in (tmp_path / "priors" / "table.md").read_text().splitlines()
                   if line.startswith("| sac |")]
    assert f"{final_eval['mean']:.0f}" in sac_line and "(50 ep.)" in sac_line  # read back from the record
    resumed = (nppac_dir / "base-s1" / "metrics.jsonl").read_text().splitlines()
    timing = ("epoch_seconds", "env_steps_per_s", "wall_seconds", "pretrain_seconds")
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k not in timing}  # noqa: E731
    assert [strip(x) for x in resumed] == [strip(x) for x in uninterrupted]
    # a label whose sweep stopped on a non-finite metric is reported as diverged and not rerun
    mlp_dir = tmp_path / "priors" / "runs" / "pointmass" / "kl-mlp"
    (mlp_dir / "summary.csv").unlink()
    shutil.rmtree(records / "kl-mlp")
    (mlp_dir / "diverged.json").write_text(json.dumps({"error": "run base-s1, epoch 3: critic_loss is nan"}))
    proc = _run("priors.py", tmp_path / "priors", "--labels", "nppac", "kl:mlp", "sac")
    assert "runs per static choice" not in proc.stdout
    summary = json.loads((tmp_path / "priors" / "priors.json").read_text())["envs"]["pointmass"]
    assert summary["kl:mlp"]["diverged"].startswith("run base-s1") and "final" not in summary["kl:mlp"]
    assert summary["nppac"]["final"]["n"] == 2
    assert "| kl:mlp | 2 | diverged at 512 steps |" in (tmp_path / "priors" / "table.md").read_text()
    assert (records / "kl-mlp" / "diverged.json").exists() and not (records / "kl-mlp" / "summary.csv").exists()
    # an invocation for one label (one per core) still tables every finished label, read back
    proc = _run("priors.py", tmp_path / "priors", "--labels", "sac")
    assert "nppac: read back from" in proc.stdout and "kl:mlp: read back from" in proc.stdout
    rows = [line.split(" | ")[0] for line in (tmp_path / "priors" / "table.md").read_text().splitlines()
            if line.startswith(("| nppac", "| kl:", "| sac"))]
    assert rows == ["| nppac", "| kl:mlp", "| sac"]

    # one demonstration against all of them: the all-demonstration runs are the priors experiment's,
    # read back from its record (same settings, demonstrations and prior options), not trained again
    # (the same --out: the quick demonstrations are a file of the output folder)
    proc = _run("single_demo.py", tmp_path / "priors", "--labels", "nppac", "--reuse", str(records.parent / "{env}"))
    assert f"nppac: read back from {records / 'nppac'} (the same runs)" in proc.stdout
    # the 1-demonstration label trains; kl:mlp, not asked for, is read back from its priors record only
    assert proc.stdout.count("(the same runs)") == 2 and f"kl:mlp: read back from {records / 'kl-mlp'}" in proc.stdout
    assert "prior: gp on 1 demonstration episodes" in proc.stdout
    results = json.loads((tmp_path / "priors" / "single_demo.json").read_text())["envs"]["pointmass"]
    assert set(results) == {"nppac (1 demo)", "nppac (6 demos)", "kl:mlp (6 demos)"}
    assert results["nppac (6 demos)"]["final"] == summary["nppac"]["final"]
    assert np.isfinite(results["nppac (1 demo)"]["final"]["mean"])
    assert (tmp_path / "priors" / "pointmass.png").exists()
    assert (records / "1-demos" / "nppac" / "summary.csv").exists() and not (records / "6-demos").exists()
    # the highest-return episode instead of the first: its own folder; the first's record stays in the table
    proc = _run("single_demo.py", tmp_path / "priors", "--labels", "nppac", "--pick", "best",
                "--reuse", str(records.parent / "{env}"))
    results = json.loads((tmp_path / "priors" / "single_demo.json").read_text())["envs"]["pointmass"]
    assert set(results) == {"nppac (1 demo)", "nppac (1 best demo)", "nppac (6 demos)", "kl:mlp (6 demos)"}
    ran = json.loads((records / "1-best-demos" / "nppac" / "sweep.json").read_text())["demos"]
    assert ran["pick"] == "best" and len(ran["episodes"]) == 1 and ran["num_episodes"] == 1
    assert "nppac (1 best demo)" in (tmp_path / "priors" / "table.md").read_text()
    # a record of other demonstrations or other prior options is not the same runs
    _use_experiments_modules(monkeypatch)
    import harness

    from kl_rl.config import TrainConfig
    from kl_rl.sweep import label_config

    args = harness.experiment_parser(None, "single_demo").parse_args(["--quick", "--out", str(tmp_path / "priors")])
    config = label_config(TrainConfig(**harness.QUICK_CONFIG), "nppac").validate()
    demos = tmp_path / "priors" / "pointmass_demos.npz"
    assert harness._same_source(records / "nppac", config, args, demos, 6)
    assert not harness._same_source(records / "nppac", config, args, demos, 1)
    assert not harness._same_source(records / "1-demos" / "nppac", config, args, demos, 1, "best")
    assert harness._same_source(records / "1-best-demos" / "nppac", config, args, demos, 1, "best")
    assert not harness._same_source(records / "nppac", config, args, tmp_path / "other.npz", 6)
    record = json.loads((records / "nppac" / "sweep.json").read_text())
    record["prior"]["options"]["num_inducing"] += 1
    (records / "nppac" / "sweep.json").write_text(json.dumps(record))
    assert not harness._same_source(records / "nppac", config, args, demos, 6)


def test_door_experiment_runs_sac_once_for_every_source(tmp_path):
    # rlpd with a small ensemble: a vmapped sweep with the demonstrations in the batch
    _run("door.py", tmp_path, "--labels", "sac", "rlpd@num_critics=3,utd=2")
    record = json.loads((tmp_path / "door.json").read_text())
    assert record["sources"]["shipped"]["sac"]["final"]["n"] == 2
    assert np.isfinite(record["sources"]["shipped"]["rlpd@num_critics=3,utd=2"]["final"]["mean"])
    assert (tmp_path / "runs" / "pointmass-no-demos" / "sac" / "summary.csv").exists()
    assert (tmp_path / "runs" / "pointmass-shipped" / "rlpd+num_critics=3+utd=2" / "summary.csv").exists()
    table = (tmp_path / "table.md").read_text()
    assert "## shipped demonstrations" in table and "final success: mean [95% CI]" in table
    rows = {r["label"]: r for r in csv.DictReader((tmp_path / "summary.csv").open())}
    assert set(rows) == {"sac", "rlpd@num_critics=3,utd=2"} and rows["sac"]["experiment"] == "door-shipped"
    assert rows["sac"]["env"] == "pointmass" and rows["sac"]["success_final_mean"] == ""  # the toy has no success
    # a later invocation for sac alone keeps rlpd, read back from its record, in the table
    proc = _run("door.py", tmp_path, "--labels", "sac")
    assert "rlpd@num_critics=3,utd=2: read back from" in proc.stdout
    assert "| rlpd@num_critics=3,utd=2 | 2 |" in (tmp_path / "table.md").read_text()


def _use_experiments_modules(monkeypatch) -> None:
    """Import experiments/' scripts afresh, restored after the test: benchmarks/ has a ``harness``
    module too, and whichever a previous test imported would otherwise shadow the other."""
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    for name in ("harness", "door", "headline", "priors", "report"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_door_table_reports_success_and_divergence(monkeypatch, tmp_path):
    _use_experiments_modules(monkeypatch)
    from door import success_rows
    from harness import seed_table

    def rows(success: list[float]) -> list[dict]:
        return [{"env_steps": 5000 * i, "eval_return": -200.0 + 150 * s, "eval_success": s, "kl_max": 2.0 + i,
                 "prior_std_min": 0.5, "wall_seconds": 60.0 * i, "pretrain_seconds": 120.0 if i == 0 else None}
                for i, s in enumerate(success)]

    def final_eval(rows: list[dict], success_rate: float) -> list[dict]:  # the run's 50-episode evaluation
        return rows[:-1] + [{**rows[-1], "final_eval": {"episodes": 50, "mean": -100.0, "success_rate": success_rate}}]

    results = {"nppac": [final_eval(rows([0.3, 0.6, 1.0]), 0.94), final_eval(rows([0.3, 0.4, 0.8]), 0.8),
                         final_eval(rows([0.3, 0.5, 0.9]), 0.86)],
               "kl:mlp": [rows([0.3, 0.0]) + [{"diverged": "critic_loss is nan", "env_steps": 5000}]] * 3}
    _, summary = seed_table(results)
    np.testing.assert_allclose(summary["nppac"]["success_final"]["mean"], 0.9)
    # the mean curve over seeds, which the results report's tables read; a diverged label's stops where it stopped
    assert summary["nppac"]["curve"]["env_steps"] == [0.0, 5000.0, 10000.0]
    np.testing.assert_allclose(summary["nppac"]["curve"]["eval_success"], [0.3, 0.5, 0.9])
    np.testing.assert_allclose(summary["nppac"]["curve"]["eval_return"], [-155.0, -125.0, -65.0])
    assert summary["kl:mlp"]["curve"]["env_steps"] == [0.0, 5000.0] and summary["kl:mlp"]["seeds"] == 3
    auc = np.mean([0.625, 0.475, 0.55])  # each seed's trapezoids over 0, 5k, 10k
    np.testing.assert_allclose(summary["nppac"]["success_auc"]["mean"], auc)
    nppac, mlp = success_rows(summary)
    assert nppac[:3] == ["nppac", "3", "0.90 [0.80, 1.00]"]
    assert nppac[5:] == ["94%, 80%, 86% (50 ep.)", "4", "0.5", "4"]  # 2 + 2 min
    assert mlp[2] == "diverged at 5,000 steps"
    # the machine-readable table: success columns, a diverged label's step, an earlier row replaced
    import argparse

    from harness import update_summary_csv

    args = argparse.Namespace(out=tmp_path, experiment="door", quick=False)
    earlier = {"nppac": [rows([0.0, 0.1]), rows([0.0, 0.2])]}
    update_summary_csv(args, "door-human", "door", seed_table(earlier)[1], earlier)
    path = update_summary_csv(args, "door-human", "door", summary, results)
    table = {r["label"]: r for r in csv.DictReader(path.open())}
    np.testing.assert_allclose(float(table["nppac"]["success_final_mean"]), 0.9)
    np.testing.assert_allclose(float(table["nppac"]["success_auc_mean"]), auc)
    assert table["nppac"]["env_steps"] == "10000" and table["kl:mlp"]["diverged_at_env_steps"] == "5000"
    assert table["kl:mlp"]["final_mean"] == "" and len(table) == 2
    # ... and the headline drawn from it: a label that diverged loses to one that finished
    from headline import headline_rows, read_rows

    (line,) = headline_rows(read_rows(path))
    assert line[:2] == ["door (door-human) (success)", "kl:mlp"] and line[4] == "diverged at 5,000"
    assert line[5] == line[8] == "wins" and line[6] == "0.90 [0.80, 1.00]"
    assert line[3].startswith(f"{auc:.2f} [")  # door's AUC column is the success curve's


def test_a_preset_change_of_the_kl_term_keeps_sac_records_valid(monkeypatch, tmp_path):
    """A label's record is read back while it ran today's settings; settings of the KL term alone
    (a preset's kl_in_target) do not invalidate a sac record, but they do an nppac one."""
    import dataclasses

    from kl_rl.config import TrainConfig

    _use_experiments_modules(monkeypatch)
    from harness import _same_sweep

    for algo, kept in (("sac", True), ("nppac", False)):
        today = TrainConfig(env="door", algo=algo).validate()
        earlier = dataclasses.replace(today, kl_in_target=not today.kl_in_target)
        (tmp_path / "sweep.json").write_text(json.dumps({"config": dataclasses.asdict(earlier),
                                                         "runs": [{}] * 3, "eval_every": 5000}))
        assert _same_sweep(tmp_path, today, 3, 5000) is kept, algo
        assert not _same_sweep(tmp_path, today, 2, 5000)


def _summary_row(label: str, final: tuple, auc: tuple, **extra) -> dict:
    return {"experiment": "priors", "env": "hopper", "label": label, "seeds": "3", "env_steps": "100000",
            "final_mean": final[0], "final_ci_low": final[1], "final_ci_high": final[2],
            "auc_mean": auc[0], "auc_ci_low": auc[1], "auc_ci_high": auc[2], **extra}


def test_headline_verdicts_from_the_summary_table(monkeypatch, tmp_path):
    _use_experiments_modules(monkeypatch)
    from headline import END, START, headline_rows, update_readme, verdict

    assert verdict((5, 4, 6), (2, 1, 3)) == "wins" and verdict((2, 1, 3), (5, 4, 6)) == "loses"
    assert verdict((5, 3, 6), (4, 2, 3.5)) == "ties" and verdict(None, (1, 0, 2)) == "loses"
    rows = [_summary_row("nppac", (3000, 2800, 3200), (2500, 2400, 2600)),
            _summary_row("sac", (3100, 2900, 3300), (1500, 1400, 1600)),       # ties on final, wins on AUC
            _summary_row("rlpd", (3500, 3300, 3700), (2550, 2450, 2650)),      # loses on final, ties on AUC
            _summary_row("bc-sac", (3000, 2800, 3200), (2500, 2400, 2600), seeds="5"),  # other seed count
            _summary_row("nppac", (1, 0, 2), (1, 0, 2), env="walker2d")]       # no baseline: no line
    lines = {line[1]: line for line in headline_rows(rows)}
    assert set(lines) == {"sac", "rlpd", "bc-sac"} and lines["sac"][0] == "hopper" and lines["sac"][2] == "3 x 100,000"
    assert lines["bc-sac"][2] == "3 x 100,000 (baseline 5 x 100,000)"
    assert (lines["sac"][5], lines["sac"][8]) == ("wins", "ties")
    assert (lines["rlpd"][5], lines["rlpd"][8]) == ("ties", "loses")
    assert lines["sac"][3] == "2500 [2400, 2600]" and lines["sac"][7] == "3100 [2900, 3300]"
    # the README block between the markers is replaced, the text around it kept
    table = tmp_path / "summary.csv"
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{START}\nstale\n{END}\nafter\n")
    assert update_readme(table, readme)
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith(f"{END}\nafter\n") and "stale" not in text
    assert "| hopper | rlpd | 3 x 100,000 |" in text
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "headline.py"), "--csv", str(table),
                           "--readme", str(tmp_path / "other.md")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and len(proc.stderr.splitlines()) == 1


def _report_fixture(tmp_path: Path) -> tuple[Path, Path]:
    """A results folder with one experiment's JSON (nppac over 3 seeds, kl:mlp over 5 diverged, built
    by ``harness.seed_table`` as the scripts build it) and a report asking for its table."""
    from harness import seed_table

    def rows(returns: list[float], kl: float) -> list[dict]:
        return [{"env_steps": 5120 * i, "eval_return": r, "kl_max": kl * (i + 1), "prior_std_min": 0.1 / (i + 1),
                 "wall_seconds": 60.0 * i, "pretrain_seconds": 60.0 if i == 0 else None}
                for i, r in enumerate(returns)]

    final = {"episodes": 50, "mean": 1000.4, "std_err": 12.6}
    nppac = [rows([100.0 * s, 200.0, 300.0, 400.0], 10.0) for s in (1, 2, 3)]
    nppac = [seed[:-1] + [{**seed[-1], "final_eval": final}] for seed in nppac]
    mlp = [rows([150.0, -50.0], 2e7) + [{"diverged": "critic_loss is nan", "env_steps": 5120}]] * 5
    _, summary = seed_table({"nppac": nppac, "kl:mlp": mlp})
    results = tmp_path / "results"
    (results / "exp").mkdir(parents=True)
    (results / "exp" / "exp.json").write_text(json.dumps({"envs": {"hopper": summary}, "rows": [
        {"sigma0": 0.031622, "kl_closed": 10735.43}, {"sigma0": 0.01, "kl_closed": 0.320827}, {"sigma0": 1.0,
                                                                                            "kl_closed": 99.838}]}))
    report = tmp_path / "report.md"
    report.write_text("intro\n<!-- table: exp/exp.json envs.hopper columns=seeds,final,curve,final_eval,kl,std,train "
                      "labels=nppac;kl:mlp;sac -->\nstale\n<!-- table:end -->\n\n<!-- plan:start -->\nold\n"
                      "<!-- plan:end -->\n<!-- rows: exp/exp.json rows every=2 columns=sigma0,kl_closed -->\n"
                      "<!-- rows:end -->\n<!-- rows: exp/exp.json envs.*.* columns=env,prior -->\n<!-- rows:end -->\n"
                      "outro\n")
    return results, report


def test_report_tables_are_generated_from_the_experiment_records(monkeypatch, tmp_path):
    _use_experiments_modules(monkeypatch)
    import report

    results, path = _report_fixture(tmp_path)
    monkeypatch.setattr(report, "PLAN", (("hopper", "exp/exp.json", "envs.hopper", "exp.py", ("nppac", "sac")),))
    assert report.update_report(path, results)
    text = path.read_text()
    assert text.startswith("intro\n") and text.endswith("<!-- rows:end -->\noutro\n") and "stale" not in text
    # rows blocks: every other item of a list; one row per key a "*" matches
    assert "| sigma0 | KL closed form |\n|---|---|\n| 0.0316 | 10,740 |\n| 1 | 99.84 |\n" in text
    assert "| env | prior |\n|---|---|\n| hopper | nppac |\n| hopper | kl:mlp |\n" in text
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    # mean over seeds 400 (a CI of three equal values is the value), the curve at 0 / 5k / 10k / 15k /
    # 50k (nearest evaluations; past the run's end "-"), each seed's final evaluation, the worst KL and std
    assert lines["| nppac"] == ("| nppac | 3 | 400 [400, 400] | 200 / 200 / 300 / 400 / - | 1000 ± 13, 1000 ± 13, "
                                "1000 ± 13 (50 ep.) | 40 | 0.025 | 4 |")
    assert lines["| kl:mlp"] == ("| kl:mlp | 5 | diverged at 5,120 | 150 / -50 / - / - / - | - | 4e7 | 0.05 | 2 |")
    assert lines["| sac"].count("no record") == 7
    assert "\n| hopper | `exp.py` | nppac 4, kl:mlp 2 (5 seeds, diverged) | sac |\n" in text
    assert report.update_report(path, results) and path.read_text() == text  # rendering twice changes nothing
    assert [report._magnitude(x) for x in (4300.0, 43.0, 0.154, 1.2e16, 5.5e-9, None, float("nan"))] == [
        "4,300", "43", "0.154", "1.2e16", "5.5e-9", "-", "-"]
    # bad markers: one line, exit 2, the report left as it was
    path.write_text(text.replace("columns=seeds,", "columns=seed,"))
    before = path.read_text()
    for extra, message in ((["--report", str(path)], "unknown column 'seed' at exp/exp.json (envs.hopper)"),
                           (["--report", str(tmp_path / "nosuch.md")], "does not exist")):
        proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "report.py"), "--results", str(results),
                               *extra], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert path.read_text() == before


def test_results_report_tables_are_the_ones_generated_from_the_records(monkeypatch):
    _use_experiments_modules(monkeypatch)
    from report import render

    text = (ROOT / "results" / "README.md").read_text()
    assert "<!-- table:end -->" in text and "<!-- plan:start -->" in text
    assert render(text) == text, "results/README.md's tables are stale: run python experiments/report.py"


def test_readme_headline_is_the_one_generated_from_results_summary(monkeypatch):
    _use_experiments_modules(monkeypatch)
    from headline import END, START, read_rows, render

    text = (ROOT / "README.md").read_text()
    block = text.split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == render(read_rows(ROOT / "results" / "summary.csv")).strip(), \
        "README's headline is stale: run python experiments/headline.py"


def test_experiment_bad_input_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "variance.py"), "--envs", "nosuch",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("variance: error: no demonstrations at")


def test_a_label_another_process_finished_meanwhile_is_in_the_table(monkeypatch, tmp_path):
    """One process per core: the records are scanned after this process's own labels trained, so
    one that the other process finished in the meantime is in this process's table too. The
    training is faked by copying the committed hopper records (no compile)."""
    import argparse

    import kl_rl.sweep
    from kl_rl.config import config_from_json

    _use_experiments_modules(monkeypatch)
    from harness import train_labels

    recorded = ROOT / "results" / "priors" / "records" / "hopper"
    base = config_from_json(json.loads((recorded / "nppac" / "sweep.json").read_text())["config"])

    def fake_sweep(cfg, labels, runs, root, **kwargs):  # trains sac while the other core finishes kl:mlp
        shutil.copytree(recorded / "sac", root)
        shutil.copytree(recorded / "kl-mlp", tmp_path / "records" / "hopper" / "kl-mlp")

    monkeypatch.setattr(kl_rl.sweep, "sweep_labels", fake_sweep)
    args = argparse.Namespace(quick=False, out=tmp_path, experiment="priors")
    results = train_labels(args, base, ["sac"], 3, "hopper", eval_every=5000, canonical=("kl:mlp", "sac"))
    assert list(results) == ["kl:mlp", "sac"]
    assert (tmp_path / "records" / "hopper" / "sac" / "summary.csv").exists()  # its own record kept


def test_a_table_keeps_every_env_and_source_with_records(monkeypatch, tmp_path):
    """An invocation that trains one env (one door source) writes the sections of every other env
    (source) with records too, read back, so ``table.md`` does not depend on which label finished
    last; nothing is trained here: every label asked for has a committed record."""
    _use_experiments_modules(monkeypatch)
    monkeypatch.delitem(sys.modules, "priors", raising=False)
    import door
    import priors

    records = ROOT / "results" / "priors" / "records"
    for env in ("hopper", "walker2d"):
        shutil.copytree(records / env / "sac", tmp_path / "priors" / "records" / env / "sac")
    assert priors.main(["--envs", "walker2d", "--labels", "sac", "--out", str(tmp_path / "priors")]) == 0
    table = (tmp_path / "priors" / "table.md").read_text()
    assert "## halfcheetah" not in table and 0 < table.index("## hopper") < table.index("## walker2d")
    envs = {row.split(",")[1] for row in (tmp_path / "priors" / "summary.csv").read_text().splitlines()[1:]}
    assert envs == {"hopper", "walker2d"}

    records = ROOT / "results" / "door" / "records"
    for folder in ("door-no-demos/sac", "door-human/bc-sac"):
        shutil.copytree(records / folder, tmp_path / "door" / "records" / folder)
    assert door.main(["--sources", "shipped", "--labels", "sac", "--batch-size", "256",
                      "--out", str(tmp_path / "door")]) == 0
    table = (tmp_path / "door" / "table.md").read_text()
    assert 0 < table.index("## shipped demonstrations") < table.index("## human demonstrations")
    assert "| bc-sac | 3 |" in table.split("## human")[1] and "| bc-sac" not in table.split("## human")[0]


def test_a_label_trained_again_with_more_seeds_stands_beside_records_of_fewer(monkeypatch, tmp_path):
    """``--seeds 5`` for a label recorded at 3 trains it again at 5 (the "5 where affordable" of a
    key comparison) while the other labels' 3-seed records stay in the table, each row with its own
    count; a later default invocation (``--seeds 3``) reads the 5-seed record back, all its seeds,
    instead of training 3 again. The training is faked from the committed hopper records."""
    import kl_rl.sweep

    _use_experiments_modules(monkeypatch)
    import harness
    import priors

    recorded = ROOT / "results" / "priors" / "records" / "hopper"
    out = tmp_path / "priors"
    for label in ("sac", "kl-mlp"):
        shutil.copytree(recorded / label, out / "records" / "hopper" / label)
    calls = []

    def fake_sweep(cfg, labels, runs, root, **kwargs):  # the 3 recorded seeds, and 2 more made of them
        calls.append((labels, len(runs)))
        shutil.copytree(recorded / "sac", root, dirs_exist_ok=True)
        for s in range(3, len(runs)):
            shutil.copytree(recorded / "sac" / f"base-s{s - 3}", root / f"base-s{s}", dirs_exist_ok=True)
        sweep = json.loads((root / "sweep.json").read_text())
        (root / "sweep.json").write_text(json.dumps({**sweep, "runs": [{"seed": s, "overrides": {}}
                                                                       for s in range(len(runs))]}))

    monkeypatch.setattr(kl_rl.sweep, "sweep_labels", fake_sweep)
    assert priors.main(["--envs", "hopper", "--labels", "sac", "--seeds", "5", "--out", str(out)]) == 0
    assert calls == [(["sac"], 5)]
    assert sorted(p.name for p in (out / "records" / "hopper" / "sac").glob("base-s*")) == [
        f"base-s{s}" for s in range(5)]
    table = (out / "table.md").read_text()
    assert "3 to 5 seeds (per label: column seeds)" in table and "| sac | 5 |" in table and "| kl:mlp | 3 |" in table
    seeds = {row["label"]: row["seeds"] for row in csv.DictReader((out / "summary.csv").open())}
    assert seeds == {"sac": "5", "kl:mlp": "3"}
    # the default --seeds 3 reads the 5-seed record back: nothing trains, every seed is in the table
    assert priors.main(["--envs", "hopper", "--labels", "sac", "kl:mlp", "--out", str(out)]) == 0
    assert len(calls) == 1 and "| sac | 5 |" in (out / "table.md").read_text()
    summary = json.loads((out / "priors.json").read_text())["envs"]["hopper"]
    assert summary["sac"]["final"]["n"] == 5 and summary["kl:mlp"]["final"]["n"] == 3
    # a record replaced by a sweep of fewer seeds keeps no seed folder of the older one
    harness.keep_record(recorded / "kl-mlp", out / "records" / "hopper" / "sac")
    assert sorted(p.name for p in (out / "records" / "hopper" / "sac").glob("base-s*")) == ["base-s0", "base-s1",
                                                                                            "base-s2"]
    assert harness.seeds_phrase({"a": [[]] * 3, "b": [[]] * 3}) == "3 seeds"


def test_single_demo_rejects_more_demonstrations_than_shipped(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "single_demo.py"), "--envs", "halfcheetah",
                           "--demo-counts", "1", "16", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "--demo-counts 16: halfcheetah's demonstrations hold 15 episodes; choose 1 to 15" in proc.stderr
    assert not (tmp_path / "runs").exists()
