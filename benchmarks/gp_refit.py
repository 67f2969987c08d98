"""Refit a saved GP prior on this machine and compare it with the saved one: fit wall time, the
bound per point, and the predictive mean and std at every demonstration state.

The refit uses the saved prior's options and the key of ``kl-rl fit-prior --seed`` on the same
demonstrations, so the two fits differ only by the machine's arithmetic. It is how the GP fit was
checked on a GPU (where float32 products default to TF32) against a CPU fit.

    python benchmarks/gp_refit.py --reference results/variance/walker2d [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine, table, write_json  # noqa: E402

from kl_rl import demos as demos_lib  # noqa: E402
from kl_rl import priors  # noqa: E402
from kl_rl.priors import storage  # noqa: E402
from kl_rl.priors.compare import fit_keys  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="folder of a saved GP prior (prior.npz/json)")
    parser.add_argument("--demos", type=Path, default=None, help="default: data/demos/<env>.npz of the saved fit")
    parser.add_argument("--seed", type=int, default=0, help="the fit-prior --seed the reference was made with")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gp_refit.json")
    args = parser.parse_args(argv)

    reference, meta = storage.load_with_metadata(args.reference)
    fit = meta.get("fit", {})
    if fit.get("kind") != "gp":
        parser.error(f"{args.reference} does not hold a GP prior fitted by kl-rl fit-prior")
    demos_path = args.demos or Path("data") / "demos" / f"{fit['env']}.npz"
    data = demos_lib.load(demos_path)
    obs, act = np.asarray(data.observations), np.asarray(data.actions)  # [N, o], [N, a]
    fitted_on = (fit.get("num_points"), fit.get("demos_returns_mean"))
    if None not in fitted_on and not (fitted_on[0] == len(obs)
                                      and np.isclose(fitted_on[1], data.episode_returns.mean())):
        parser.error(f"{demos_path} ({len(obs)} states, mean return {data.episode_returns.mean():.1f}) is not the "
                     f"file {args.reference} was fitted on ({fitted_on[0]} states, mean return {fitted_on[1]:.1f}); "
                     "pass that file with --demos")

    start = time.perf_counter()
    refit, info = priors.fit_with_info("gp", fit_keys(args.seed)[0], obs, act, **fit["options"])
    fit_seconds = time.perf_counter() - start
    predict = jax.jit(priors.predict)
    mean_new, std_new = jax.device_get(predict(refit, obs))
    mean_ref, std_ref = jax.device_get(predict(reference, obs))
    rel_std = np.abs(std_new - std_ref) / std_ref  # [N, a]
    record = {
        "reference": str(args.reference), "demos": str(demos_path), "options": fit["options"],
        "fit_seconds": fit_seconds, "reference_fit_seconds": fit.get("fit_seconds"),
        "bound_per_point": info["bound_per_point"], "reference_bound_per_point": fit.get("bound_per_point"),
        "std_median": float(np.median(std_new)), "reference_std_median": float(np.median(std_ref)),
        "std_rel_diff_median": float(np.median(rel_std)), "std_rel_diff_max": float(rel_std.max()),
        "mean_abs_diff_max": float(np.abs(mean_new - mean_ref).max()), "machine": machine(),
    }
    pairs = {"fit seconds": ("fit_seconds", "reference_fit_seconds"),
             "bound per point": ("bound_per_point", "reference_bound_per_point"),
             "median std at the demo states": ("std_median", "reference_std_median")}
    print(table([[name, *(f"{record[k]:.4g}" if record[k] is not None else "-" for k in keys)]
                 for name, keys in pairs.items()], ["", "this machine", "reference"]))
    print(f"std relative difference: median {record['std_rel_diff_median']:.3g}, max {record['std_rel_diff_max']:.3g}; "
          f"mean max abs difference {record['mean_abs_diff_max']:.3g}")
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
