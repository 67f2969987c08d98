"""Throughput: kl_rl SAC against Brax's own SAC, side by side in one process.

Same MJX env, same number of envs, batch 256, 2x256 networks, the same update-to-data ratio and
env-step budget. Reports compile time (first run with an empty persistent compilation cache,
second run of the same configs with that cache filled), steady-state env steps/s and gradient
updates/s of the training loop, and the pure SAC-update microbenchmark (the loop's ceiling),
also measured interleaved with training epochs so that the loop/ceiling ratio compares like with
like on a noisy machine.

    python benchmarks/throughput.py [--total-steps 20480] [--skip-brax]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compile_timer, machine, run_brax_sac, table, write_json  # noqa: E402

from kl_rl import compile_cache  # noqa: E402
from kl_rl.buffer import Transition  # noqa: E402
from kl_rl.config import HParams, TrainConfig  # noqa: E402
from kl_rl.loop import run as run_kl_rl  # noqa: E402
from kl_rl.sac import SAC  # noqa: E402
from kl_rl.train import Trainer  # noqa: E402


def kl_rl_loop(cfg: TrainConfig, eval_every: int, seed: int) -> dict:
    t0 = time.perf_counter()
    with compile_timer() as compiled:
        result = run_kl_rl(cfg, HParams.create(), seed, run_dir=None, eval_every=eval_every, progress=False)
    wall = time.perf_counter() - t0
    full = cfg.env_steps_per_epoch * cfg.utd
    learning = [r for r, prev in zip(result.rows[1:], result.rows[:-1], strict=True)
                if r["grad_steps"] - prev["grad_steps"] == full]
    steady = learning[1:]  # the first epoch with updates may still warm caches
    seconds = sum(r["epoch_seconds"] for r in steady)
    return {
        "wall_seconds": wall,
        "compile_seconds": compiled["compile_seconds"],
        "steady_env_steps_per_s": len(steady) * cfg.env_steps_per_epoch / seconds,
        "steady_updates_per_s": len(steady) * full / seconds,
        "steady_epochs": len(steady),
        "eval_return": result.final_eval["eval_return"],
    }


def brax_loop(cfg: TrainConfig, num_evals: int, seed: int) -> dict:
    out = run_brax_sac(cfg.env, num_envs=cfg.num_envs, total_steps=cfg.total_steps,
                       learning_starts=cfg.learning_starts, batch_size=cfg.batch_size, utd=cfg.utd,
                       episode_length=cfg.episode_length, num_evals=num_evals,
                       eval_episodes=cfg.eval_episodes, seed=seed)
    steady = out["epoch_env_steps_per_s"][1:]  # the first training epoch includes its compile
    rate = len(steady) / sum(1.0 / s for s in steady)  # equal-size epochs: total steps / total time
    out.update(steady_env_steps_per_s=rate, steady_updates_per_s=rate * cfg.utd, steady_epochs=len(steady))
    return out


def _median_rate(fn, state, n_updates: int, repeats: int):
    state = jax.block_until_ready(fn(state))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        state = jax.block_until_ready(fn(state))
        times.append(time.perf_counter() - t)
    return n_updates / float(np.median(times))


def _kl_rl_update_program(cfg: TrainConfig, obs_size: int, action_size: int):
    """The jitted SAC update alone: ``updates_per_iter`` updates per call in a scan, as in the loop,
    on fixed random minibatches. Returns (step, initial carry)."""
    sac, hparams, n = SAC(cfg, obs_size, action_size), HParams.create(), cfg.updates_per_iter
    keys = jax.random.split(jax.random.key(0), 3)
    batch = Transition(obs=jax.random.normal(keys[0], (n, cfg.batch_size, obs_size)),
                       action=jax.random.uniform(keys[1], (n, cfg.batch_size, action_size), minval=-1, maxval=1),
                       reward=jax.random.normal(keys[2], (n, cfg.batch_size)),
                       next_obs=jax.random.normal(keys[1], (n, cfg.batch_size, obs_size)),
                       terminated=jnp.zeros((n, cfg.batch_size)))

    @jax.jit
    def step(carry):
        agent, key = carry
        key, sub = jax.random.split(key)
        agent, _ = jax.lax.scan(lambda a, xs: sac.update(a, hparams, *xs), agent,
                                (batch, jax.random.split(sub, n)))
        return agent, key

    return step, (sac.init(keys[0], hparams), keys[1])


def micro_kl_rl(cfg: TrainConfig, obs_size: int, action_size: int, repeats: int) -> float:
    """Updates/s of the jitted SAC update alone (median over ``repeats`` calls)."""
    step, carry = _kl_rl_update_program(cfg, obs_size, action_size)
    return _median_rate(step, carry, cfg.updates_per_iter, repeats)


def loop_vs_update_interleaved(cfg: TrainConfig, rounds: int) -> dict:
    """The loop's share of the update-only ceiling, measured side by side: alternately one
    training epoch and the same number of update-only calls, ``rounds`` times; medians of each.
    Both see the same machine conditions, unlike two measurements minutes apart."""
    trainer, hparams = Trainer(cfg), HParams.create()
    state = jax.jit(trainer.init)(jax.random.key(0), hparams)
    epoch = jax.jit(trainer.epoch, donate_argnums=0)
    while int(state.env_steps) < cfg.learning_starts + cfg.env_steps_per_epoch:  # past the warm-up
        state, _ = epoch(state, hparams)
    step, carry = _kl_rl_update_program(cfg, trainer.env.obs_size, trainer.env.action_size)
    carry = jax.block_until_ready(step(carry))
    calls = cfg.env_steps_per_epoch * cfg.utd // cfg.updates_per_iter
    epoch_s, update_s = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        state, metrics = epoch(state, hparams)
        jax.block_until_ready(metrics)
        epoch_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(calls):
            carry = step(carry)
        jax.block_until_ready(carry)
        update_s.append(time.perf_counter() - t)
    updates = cfg.env_steps_per_epoch * cfg.utd
    return {"loop_updates_per_s": updates / float(np.median(epoch_s)),
            "update_only_updates_per_s": updates / float(np.median(update_s)),
            "ratio": float(np.median(update_s) / np.median(epoch_s)), "rounds": rounds}


def micro_brax(cfg: TrainConfig, obs_size: int, action_size: int, repeats: int) -> float:
    """Updates/s of Brax's SAC update (alpha, critic, actor, target) built from its own losses."""
    import optax
    from brax.training import gradients
    from brax.training.acme import running_statistics, specs
    from brax.training.agents.sac import losses as sac_losses
    from brax.training.agents.sac import networks as sac_networks
    from brax.training.types import Transition as BraxTransition

    net = sac_networks.make_sac_networks(obs_size, action_size)
    alpha_loss, critic_loss, actor_loss = sac_losses.make_losses(
        net, reward_scaling=1.0, discounting=0.99, action_size=action_size)
    adam = optax.adam(3e-4)
    alpha_up = gradients.gradient_update_fn(alpha_loss, adam, pmap_axis_name=None)
    critic_up = gradients.gradient_update_fn(critic_loss, adam, pmap_axis_name=None)
    actor_up = gradients.gradient_update_fn(actor_loss, adam, pmap_axis_name=None)
    norm = running_statistics.init_state(specs.Array((obs_size,), jnp.float32))
    n, b = cfg.updates_per_iter, cfg.batch_size
    keys = jax.random.split(jax.random.key(0), 3)
    batch = BraxTransition(
        observation=jax.random.normal(keys[0], (n, b, obs_size)),
        action=jax.random.uniform(keys[1], (n, b, action_size), minval=-1, maxval=1),
        reward=jax.random.normal(keys[2], (n, b)), discount=jnp.ones((n, b)),
        next_observation=jax.random.normal(keys[1], (n, b, obs_size)),
        extras={"state_extras": {"truncation": jnp.zeros((n, b))}, "policy_extras": {}})

    def one(carry, t):
        (pp, qp, tq, po, qo, la, ao), key = carry
        key, k1, k2, k3 = jax.random.split(key, 4)
        _, la_new, ao = alpha_up(la, pp, norm, t, k1, optimizer_state=ao)
        alpha = jnp.exp(la)
        _, qp_new, qo = critic_up(qp, pp, norm, tq, alpha, t, k2, optimizer_state=qo)
        _, pp_new, po = actor_up(pp, norm, qp, alpha, t, k3, optimizer_state=po)
        tq = jax.tree.map(lambda x, y: x * (1 - 5e-3) + y * 5e-3, tq, qp_new)
        return ((pp_new, qp_new, tq, po, qo, la_new, ao), key), None

    step = jax.jit(lambda carry: jax.lax.scan(one, carry, batch)[0])
    pp, qp, la = net.policy_network.init(keys[0]), net.q_network.init(keys[1]), jnp.zeros(())
    state = ((pp, qp, qp, adam.init(pp), adam.init(qp), la, adam.init(la)), keys[2])
    return _median_rate(step, state, n, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--total-steps", type=int, default=20480)
    parser.add_argument("--learning-starts", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--utd", type=int, default=1)
    parser.add_argument("--num-evals", type=int, default=5, help="evaluations incl. the initial one (Brax)")
    parser.add_argument("--micro-repeats", type=int, default=30)
    parser.add_argument("--interleaved-rounds", type=int, default=7)
    parser.add_argument("--cache-dir", default="", help="persistent compilation cache (default: a new empty dir)")
    parser.add_argument("--skip-brax", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    args = parser.parse_args(argv)

    cache_dir = compile_cache.enable(args.cache_dir or tempfile.mkdtemp(prefix="kl_rl_bench_cache_"))
    cfg = TrainConfig(env=args.env, num_envs=args.num_envs, total_steps=args.total_steps,
                      learning_starts=args.learning_starts, batch_size=args.batch_size, utd=args.utd).validate()
    eval_every = (cfg.total_steps - cfg.learning_starts) // (args.num_evals - 1)
    print(f"{args.env}, {cfg.num_envs} envs, UTD {cfg.utd}, batch {cfg.batch_size}, "
          f"{cfg.total_steps} env steps; compile cache {cache_dir}; {jax.devices()}", flush=True)

    runs: dict[str, dict] = {}
    for attempt in ("first", "second"):
        if attempt == "second":
            jax.clear_caches()  # drop in-memory executables: only the persistent cache remains
        runs[f"kl_rl_{attempt}"] = kl_rl_loop(cfg, eval_every, seed=0)
        print(f"kl_rl {attempt} run: {runs[f'kl_rl_{attempt}']}", flush=True)
        if not args.skip_brax:
            runs[f"brax_{attempt}"] = brax_loop(cfg, args.num_evals, seed=0)
            print(f"brax {attempt} run: { {k: v for k, v in runs[f'brax_{attempt}'].items() if k != 'curve'} }",
                  flush=True)

    from kl_rl.envs import make_env

    env = make_env(cfg.env, cfg.num_envs)
    micro = {"kl_rl": micro_kl_rl(cfg, env.obs_size, env.action_size, args.micro_repeats)}
    interleaved = loop_vs_update_interleaved(cfg, args.interleaved_rounds)
    print(f"interleaved loop vs update-only: {interleaved}", flush=True)
    if not args.skip_brax:
        micro["brax"] = micro_brax(cfg, env.obs_size, env.action_size, args.micro_repeats)

    ours = runs["kl_rl_first"]
    rows = [["kl_rl SAC", ours["compile_seconds"], runs["kl_rl_second"]["compile_seconds"],
             ours["steady_env_steps_per_s"], ours["steady_updates_per_s"], micro["kl_rl"]]]
    ratios = {"kl_rl_loop_over_update_only_interleaved": interleaved["ratio"],
              "kl_rl_loop_over_update_only_separate_runs": ours["steady_updates_per_s"] / micro["kl_rl"]}
    if not args.skip_brax:
        brax = runs["brax_first"]
        rows.append(["Brax SAC", brax["compile_seconds"], runs["brax_second"]["compile_seconds"],
                     brax["steady_env_steps_per_s"], brax["steady_updates_per_s"], micro["brax"]])
        ratios.update(
            kl_rl_over_brax_updates_per_s=ours["steady_updates_per_s"] / brax["steady_updates_per_s"],
            kl_rl_over_brax_compile_first=ours["compile_seconds"] / brax["compile_seconds"],
            kl_rl_over_brax_micro=micro["kl_rl"] / micro["brax"],
        )
    print()
    print(table(rows, ["", "compile 1st (s)", "compile 2nd (s)", "env steps/s", "updates/s",
                       "update-only/s"]))
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")
    payload = {"config": {"env": cfg.env, "num_envs": cfg.num_envs, "utd": cfg.utd, "batch_size": cfg.batch_size,
                          "hidden_sizes": cfg.hidden_sizes, "total_steps": cfg.total_steps,
                          "learning_starts": cfg.learning_starts, "num_evals": args.num_evals},
               "machine": machine(), "runs": runs, "microbenchmark_updates_per_s": micro,
               "loop_vs_update_interleaved": interleaved, "ratios": ratios,
               "notes": "compile 2nd: same configs again in the same process after jax.clear_caches(), "
                        "served by the persistent compilation cache; Brax's trainer runs with "
                        "jax.device_put_replicated/sharded mapped back from jax._src.api (removed in jax 0.10)."}
    print(f"wrote {write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
