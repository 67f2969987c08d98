"""What RLPD's critic recipe costs on this machine: env steps/s and critic updates/s of the
training loop for sac, nppac and rlpd at UTD 1, 4 and 20 with ensembles of 2 and 10 critics,
side by side in one process; and the ensemble as separate critic networks (the trainer's) against
one vmapped network with stacked parameters (one batched matmul per layer).

Each loop configuration compiles its epoch program, runs one epoch to warm up and then times
``--epochs`` epochs of ``--steps-per-epoch`` transitions with updates from the first step
(learning_starts 0, no pretraining; nppac's GP prior comes from the prior cache or is fitted once
to the shipped demonstrations). Each algo keeps its own recipe otherwise: rlpd has LayerNorm,
the subset of 2 in the target and the actor on the ensemble mean, sac and nppac the whole
ensemble's minimum. Writes ``benchmarks/results/rlpd.json``.

    python benchmarks/rlpd.py [--env halfcheetah] [--algos sac nppac rlpd] [--utds 1 4 20]
        [--critics 2 10] [--ensemble-critics 2 10] [--epochs 2] [--steps-per-epoch 64]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compile_timer, machine, table, write_json  # noqa: E402

from kl_rl import compile_cache  # noqa: E402
from kl_rl.config import HParamOptions, TrainConfig  # noqa: E402
from kl_rl.envs import make_env  # noqa: E402
from kl_rl.loop import demo_transitions  # noqa: E402
from kl_rl.networks import MLP, Critics  # noqa: E402
from kl_rl.prior_source import demos_and_prior  # noqa: E402
from kl_rl.train import Trainer  # noqa: E402


class VmappedCritics(nn.Module):
    """The same ensemble as ``kl_rl.networks.Critics`` as one ``nn.vmap``-ed MLP: parameters
    stacked on a leading [num_critics] axis, one batched matmul per layer (measured here only)."""

    hidden_sizes: Sequence[int]
    num_critics: int = 2
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        ensemble = nn.vmap(MLP, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None,
                           out_axes=0, axis_size=self.num_critics)
        return ensemble(self.hidden_sizes, 1, self.layer_norm)(x)[..., 0]  # [num_critics, B]


def loop_rate(cfg: TrainConfig, epochs: int) -> dict:
    """Compile seconds, env steps/s and critic updates/s of ``cfg``'s epoch program."""
    cfg = cfg.validate()
    prior, demos, _, _ = demos_and_prior(cfg)
    trainer = Trainer(cfg)
    hparams = HParamOptions().hparams(cfg.env, cfg.algo)
    state = jax.jit(trainer.init)(jax.random.key(0), hparams, prior,
                                  demo_transitions(cfg, demos, trainer.env, None))
    with compile_timer() as timer:
        epoch = jax.jit(trainer.epoch, donate_argnums=0).lower(state, hparams).compile()
    state, _ = epoch(state, hparams)  # warm-up
    jax.block_until_ready(state)
    t = time.perf_counter()
    for _ in range(epochs):
        state, metrics = epoch(state, hparams)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - t) / epochs
    steps = cfg.env_steps_per_epoch
    return {"compile_seconds": timer["compile_seconds"], "env_steps_per_s": steps / seconds,
            "critic_updates_per_s": steps * cfg.utd / seconds, "actor_updates_per_s": steps / seconds}


def ensemble_rate(module: type, num_critics: int, obs_size: int, action_size: int, batch: int,
                  updates: int = 100, repeats: int = 3) -> float:
    """Critic-only Adam steps per second of ``module`` (Critics or VmappedCritics) with LayerNorm."""
    net = module((256, 256), num_critics, True)
    key = jax.random.key(0)
    obs, action = jax.random.normal(key, (batch, obs_size)), jax.random.normal(key, (batch, action_size))
    params = net.init(key, obs, action)
    opt = optax.adam(3e-4)

    def step(carry, _):
        params, opt_state = carry
        grads = jax.grad(lambda p: jnp.mean((net.apply(p, obs, action) - 1.0) ** 2))(params)
        updates_, opt_state = opt.update(grads, opt_state)
        return (optax.apply_updates(params, updates_), opt_state), None

    run = jax.jit(lambda c: jax.lax.scan(step, c, None, length=updates)[0])
    carry = jax.block_until_ready(run((params, opt.init(params))))
    t = time.perf_counter()
    for _ in range(repeats):
        carry = run(carry)
    jax.block_until_ready(carry)
    return updates * repeats / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--algos", nargs="+", default=["sac", "nppac", "rlpd"])
    parser.add_argument("--utds", type=int, nargs="+", default=[1, 4, 20])
    parser.add_argument("--critics", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps-per-epoch", type=int, default=64)
    parser.add_argument("--ensemble-critics", type=int, nargs="+", default=None,
                        help="ensemble sizes of the separate-vs-vmapped timing (default: --critics)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "rlpd.json")
    args = parser.parse_args(argv)
    compile_cache.enable("")  # compile times measured cold
    base = TrainConfig(env=args.env, env_steps_per_epoch=args.steps_per_epoch, total_steps=10 * args.steps_per_epoch,
                       learning_starts=0, pretrain_epochs=0)
    rows, records = [], []
    for algo in args.algos:
        for critics in args.critics:
            for utd in args.utds:
                cfg = dataclasses.replace(base, algo=algo, num_critics=critics, utd=utd)
                rate = loop_rate(cfg, args.epochs)
                records.append({"algo": algo, "num_critics": critics, "utd": utd, **rate})
                rows.append([algo, critics, utd, f"{rate['env_steps_per_s']:.1f}",
                             f"{rate['critic_updates_per_s']:.0f}", f"{rate['compile_seconds']:.0f}"])
                print(table(rows[-1:], ["algo", "critics", "UTD", "env steps/s", "critic updates/s", "compile s"]),
                      flush=True)
                write_json(args.out, {"env": args.env, "steps_per_epoch": args.steps_per_epoch, "epochs": args.epochs,
                                      "loop": records, "partial": True, "machine": machine()})  # kept if stopped
    env = make_env(args.env, 1)
    ensemble = []
    for critics in args.ensemble_critics or args.critics:
        for module in (Critics, VmappedCritics):  # interleaved, so both see the same machine load
            ensemble.append({"num_critics": critics, "module": module.__name__,
                             "updates_per_s": ensemble_rate(module, critics, env.obs_size, env.action_size, 256)})
    print(table(rows, ["algo", "critics", "UTD", "env steps/s", "critic updates/s", "compile s"]))
    print(table([[e["num_critics"], e["module"], f"{e['updates_per_s']:.0f}"] for e in ensemble],
                ["critics", "ensemble as", "critic-only updates/s (batch 256, LayerNorm)"]))
    write_json(args.out, {"env": args.env, "steps_per_epoch": args.steps_per_epoch, "epochs": args.epochs,
                          "loop": records, "ensemble": ensemble, "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
