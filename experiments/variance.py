"""Do common behavioral policies have vanishing variance away from the demonstrations?

For every prior kind (gp, mlp, ensemble, dropout, floor) and every env with shipped
demonstrations, fits the prior on all but the last 3 episodes (through ``kl-rl fit-prior``) and
measures its predictive std on the demonstration states and at probes offset by growing
multiples of the demonstrations' own spread, plus the 2-D principal-component std map (GP
against MLP). Writes ``results/variance/<env>/`` (fit-prior's files), ``std_vs_distance.png``
(one panel per env) and ``table.md``.

    python experiments/variance.py [--quick] [--envs halfcheetah hopper walker2d ant]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    ENVS,
    ROOT,
    experiment_parser,
    finish,
    markdown_table,
    prior_options,
    quick_demos,
    resolve_out,
)

from kl_rl.priors import KINDS  # noqa: E402
from kl_rl.priors.compare import CompareSpec, fit_and_compare  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__, "variance")
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--overwrite", action="store_true", help="refit envs whose results already exist")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out = resolve_out(args)
    os.chdir(ROOT)  # shipped demonstrations are recorded by their path in the repository, not this machine's
    sources = {"pointmass": quick_demos(out)} if args.quick else {
        env: Path("data") / "demos" / f"{env}.npz" for env in args.envs}
    for env, path in sources.items():
        if not path.exists():
            raise SystemExit(f"variance: error: no demonstrations at {path}; make them with `make demos ENV={env}`")
    records = {}
    for env, path in sources.items():
        env_out = out / env
        if args.overwrite or not (env_out / "diagnostics.json").exists():
            fit_and_compare(CompareSpec(demos=path, prior="gp", out=env_out, options=prior_options(args),
                                        compare=KINDS, holdout_episodes=1 if args.quick else 3,
                                        rollout_episodes=0 if args.quick else 5, seed=args.seed, overwrite=True))
        records[env] = json.loads((env_out / "diagnostics.json").read_text())
    _figure(records, out / "std_vs_distance.png")
    header = ["env", "prior", "held-out NLL", "std near", "std far", "far / near", "std trend",
              "mean-action return", "fit s"]
    rows = []
    for env, rec in records.items():
        for kind, row in rec["kinds"].items():
            ratio = row["std_far"] / row["std_near"]
            ret = row.get("mean_action_return")
            rows.append([env, kind, f"{row['nll']:.3f}" if "nll" in row else "-", f"{row['std_near']:.4f}",
                         f"{row['std_far']:.4f}", f"{ratio:.2f}",
                         "grows" if ratio > 1.5 else "shrinks" if ratio < 0.9 else "flat",
                         f"{ret['mean']:.0f} (demos {rec['demo_return_mean']:.0f})" if ret else "-",
                         f"{row['fit_seconds']:.1f}"])
    text = ("std near: mean predictive std (averaged over action dims) on held-in demonstration states; "
            "std far: at probes offset by N(0, 4^2) in the demonstrations' standardised units. "
            "\"grows\" when far/near > 1.5, \"shrinks\" when < 0.9. Per-env pictures (std against distance, "
            "PCA std maps GP | MLP) are in the env folders.\n\n" + markdown_table(header, rows) + "\n")
    finish(args, "variance", text, {"envs": records}, started)
    return 0


def _figure(records: dict, path: Path) -> None:
    import numpy as np

    from kl_rl.plots import _save, plt

    fig, axes = plt.subplots(1, len(records), figsize=(4.2 * len(records), 3.6), dpi=110, squeeze=False)
    for ax, (env, rec) in zip(axes[0], records.items(), strict=True):
        scales = np.array(rec["probe_scales"], float)
        for i, (kind, row) in enumerate(rec["kinds"].items()):
            stds = [row["std_by_scale"][str(s)] for s in rec["probe_scales"]]  # JSON keys: str(float)
            ax.plot(scales + 0.05, stds, "o-", ms=3, color=f"C{i}", label=kind)
        ax.set(xscale="log", yscale="log", xlabel="probe offset (demo std units, +0.05)", title=env)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("mean predictive std")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Predictive std away from the demonstrations: it must grow for the KL to stay bounded", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


if __name__ == "__main__":
    sys.exit(main())
