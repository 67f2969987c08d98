"""What happens in the first online epochs after pretraining? Continues a `kl-rl train` run folder
from its checkpoint after pretraining (epoch 0) with changed settings, one run per KL weight in
``--alphas`` vmapped into one program (they share the pretrained state and the env key, so they
differ only by alpha), and prints per epoch the KL estimate, mean Q, entropy, training-episode
length and, every other epoch, the deterministic evaluation. No pretraining is repeated.

    python benchmarks/online_start.py runs/hopper-nppac-s0 --alphas 0.3 1 3 --epochs 16 \
        [--set kl_in_target=False mean_action_weight=0 ...] [--out FILE.json]

``--set`` changes TrainConfig fields, parsed as head_start.py's --set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine, write_json  # noqa: E402
from head_start import parse_overrides  # noqa: E402

from kl_rl import compile_cache  # noqa: E402

SHOWN = ("kl_mean", "q_mean", "entropy", "train_length", "train_return")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--alphas", type=float, nargs="+", required=True)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    record_path = args.run / "config.json"
    if not record_path.exists() or not (args.run / "checkpoints" / "0").exists():
        parser.error(f"{args.run} is not a kl-rl run folder with its checkpoint after pretraining "
                     "(config.json and checkpoints/0); pass a folder written by kl-rl train")
    record = json.loads(record_path.read_text())
    from kl_rl.config import config_from_json

    try:
        raw = {**record["config"], **parse_overrides(args.overrides)}
        cfg = config_from_json(raw).validate()
    except ValueError as err:
        parser.error(str(err))
    compile_cache.enable(str(compile_cache.DEFAULT_DIR))

    import jax
    import jax.numpy as jnp

    from kl_rl import checkpoint, priors
    from kl_rl.config import HParams
    from kl_rl.train import Trainer

    trainer = Trainer(cfg)
    hparams = HParams.create(**record["hparams"])
    prior = None
    if cfg.uses_prior:
        prior, _ = priors.load_with_metadata(args.run / "prior", obs_size=trainer.env.obs_size,
                                             action_size=trainer.env.action_size)
    template = jax.jit(trainer.init)(jax.random.key(record["seed"]), hparams, prior)
    state, _ = checkpoint.restore(args.run, template, epoch=0)
    runs = len(args.alphas)
    states = jax.tree.map(lambda x: jnp.stack([x] * runs), state)
    hps = jax.tree.map(lambda x: jnp.stack([x] * runs), hparams).replace(alpha=jnp.asarray(args.alphas, jnp.float32))
    epoch = jax.jit(jax.vmap(trainer.epoch), donate_argnums=0)
    evaluate = jax.jit(jax.vmap(trainer.evaluate))
    rows = []
    for index in range(args.epochs):
        states, metrics = epoch(states, hps)
        metrics = jax.device_get(metrics)
        row = {"epoch": index + 1, "env_steps": int(np.asarray(metrics["env_steps"])[0]),
               **{k: np.round(np.asarray(metrics[k], float), 2).tolist() for k in SHOWN if k in metrics}}
        if (index + 1) % 2 == 0 or index + 1 == args.epochs:
            row["eval_return"] = np.round(np.asarray(evaluate(states)["eval_return"], float)).tolist()
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out is not None:
        write_json(args.out, {"run": str(args.run), "alphas": args.alphas, "overrides": args.overrides,
                              "config": raw, "rows": rows, "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
