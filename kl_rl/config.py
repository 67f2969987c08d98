"""Configuration: a static ``TrainConfig`` (shapes and counts, baked into the compiled program)
and an ``HParams`` pytree of floats that a sweep may vmap over.

Defaults follow the reference implementation (docs/method.md): lr 3e-4, gamma 0.99, tau 5e-3,
2x256 networks, batch 256, replay 1e6, log-std clamped to [-20, 2].
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
from flax import struct

# Named combinations: an algo name that stands for another algo with some options set (those the
# user sets win); validate() resolves it, so a run's record names the algo and options it ran.
# nppac+: N-PPAC with RLPD's critic recipe at 2 critics and UTD 1 (2 LayerNorm critics, the actor on
# their mean, half of each minibatch from the demonstrations), which beat nppac's area under the
# curve on halfcheetah and hopper (results/README.md, the priors question).
ALGO_PRESETS: dict[str, dict[str, object]] = {
    "nppac+": dict(algo="nppac", critic_recipe="rlpd", num_critics=2, utd=1),
}
ALGOS: tuple[str, ...] = ("nppac", "kl", "sac", "bc-sac", "rlpd", *ALGO_PRESETS)
WARMUP_ACTIONS: tuple[str, ...] = ("auto", "random", "policy")
ACTOR_Q: tuple[str, ...] = ("min", "mean")
# Settings read only by the KL term (kl_rl.penalties.KLPenalty): inert for sac, bc-sac and rlpd.
KL_TERM_SETTINGS: tuple[str, ...] = ("kl_in_target", "prior_truncated", "prior_scale_is_variance")
PRETRAINING_ALGOS: tuple[str, ...] = ("nppac", "kl", "bc-sac")  # rlpd's demonstrations go to the batch instead

# What the critic-side options left unset (None) take under each --critic-recipe: SAC's, or RLPD's
# (Ball et al. 2023), the default of rlpd and available to every algo. critic_subset None: the whole ensemble.
CRITIC_RECIPES: dict[str, dict[str, object]] = {
    "sac": dict(num_critics=2, critic_layernorm=False, critic_subset=None, utd=1, actor_q="min", demos_in_batch=False),
    "rlpd": dict(num_critics=10, critic_layernorm=True, critic_subset=2, utd=20, actor_q="mean", demos_in_batch=True),
}

@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static settings of one training program. Changing any of them recompiles."""

    env: str = "halfcheetah"
    """Environment: ant, halfcheetah, hopper, walker2d, door (binary reward; door-zero-one, door-dense:
    its 0/1 and shaped variants), all MuJoCo on MJX, or pointmass (toy task)."""
    num_envs: int = 16
    """Environments stepped in parallel with jax.vmap (16 is fastest on a CPU)."""
    episode_length: int | None = None
    """Time limit; reaching it truncates (not terminates) the episode. Default: the env's preset (1000)."""
    total_steps: int = 50_000
    """Environment transitions to collect in total (across all envs)."""
    env_steps_per_epoch: int = 1024
    """Transitions per jitted epoch call; a multiple of num-envs."""
    learning_starts: int = 5_000
    """Transitions collected before gradient updates start (by --warmup-actions)."""
    warmup_actions: str = "auto"
    """Who acts during the first learning-starts transitions: random (uniform actions), policy
    (the actor as it is, as the reference and Brax's SAC do) or auto (when the actor was
    pretrained on demonstrations, the env's preset: policy, random on halfcheetah; else random)."""
    critic_warmup: int | None = None
    """Transitions after learning-starts during which only the critics learn; the actor (and
    SAC's temperature) wait, so a pretrained actor first meets a critic fitted to its own data.
    Default (None): the env's preset when the actor was pretrained (5000; 0 on halfcheetah), else 0."""
    utd: int | None = None
    """Update-to-data ratio: critic updates per environment transition; each transition also gets
    one actor (and temperature) update, after the critics' (RLPD's scheme; at 1 a plain SAC
    update). Default: the recipe's (rlpd 20, sac 1)."""
    batch_size: int | None = None
    """Minibatch size of each gradient update. Default: the env's preset (256)."""
    replay_size: int = 1_000_000
    """Replay capacity (capped at total-steps: a larger buffer would never fill)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and of each critic."""
    critic_recipe: str | None = None
    """sac or rlpd: the defaults of the critic-side options below (default: rlpd for --algo rlpd,
    else sac). --algo nppac --critic-recipe rlpd is N-PPAC with RLPD's critics, batch and UTD."""
    num_critics: int | None = None
    """Critics in the ensemble (default: the recipe's; rlpd 10, sac 2, SAC's clipped double Q)."""
    critic_layernorm: bool | None = None
    """LayerNorm after each hidden layer of the critics (default: the recipe's; on for rlpd)."""
    critic_subset: int | None = None
    """The TD target takes the minimum over a random subset of this many target critics, drawn
    per update (default: the recipe's; 2 for rlpd, the whole ensemble for sac)."""
    actor_q: str | None = None
    """What the actor maximizes over the ensemble: min (SAC) or mean (RLPD); default: the recipe's."""
    demos_in_batch: bool | None = None
    """Keep the demonstrations in a second, fixed replay buffer and draw the share
    ``demo_ratio`` (an HParam) of every minibatch from it (default: the recipe's; on for rlpd)."""
    log_std_min: float = -20.0
    """Lower clamp of the actor's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clamp of the actor's log standard deviation."""
    eval_episodes: int = 10
    """Deterministic evaluation episodes of the periodic evaluations (the learning curve), run in parallel."""
    final_eval_episodes: int = 50
    """Deterministic episodes of the final evaluation (summary.json's final_eval: mean, standard
    error, CI, early ends), run eval-episodes at a time; 0 skips it. A few episodes are not enough
    to judge a policy that fails on some of them."""
    algo: str = "sac"
    """nppac (KL toward a GP prior), kl (KL toward --prior), sac (no prior, automatic entropy
    tuning), bc-sac (actor pretrained by behavioral cloning, then SAC), rlpd (SAC with half of
    each minibatch from the demonstrations and RLPD's critic recipe) or nppac+ (nppac with
    --critic-recipe rlpd --num-critics 2 --utd 1: LayerNorm critics and demonstrations in the batch)."""
    prior: str = "gp"
    """Behavioral prior of the kl algo: gp, mlp, ensemble, dropout or floor (nppac: gp)."""
    pretrain_epochs: int = 400
    """Passes over the demonstration states before online training (KL(pi||pi0) for nppac/kl,
    behavioral cloning for bc-sac); 0 skips pretraining."""
    pretrain_batch_size: int = 64
    """Minibatch size of pretraining."""
    mean_action_weight: float = 1.0
    """nppac / kl: pretraining and the actor loss (times alpha there) add this times the squared
    distance, in units of pi0's std, from the actor's deterministic action tanh(mean) to pi0's
    mean (clipped into the action box). The KL alone pulls the evaluated action short of pi0's
    mean wherever pi0 reaches past the box. 0 is the paper's KL-only objective."""
    prior_scale_is_variance: bool = False
    """Reproduce the reference code's mix-up: use the prior's variance where its std belongs."""
    prior_truncated: bool = False
    """nppac / kl: score actions under pi0 truncated to the action box [-1, 1]^d, the actions the
    tanh-squashed actor can take. An untruncated pi0 that puts mass past the box (where the
    demonstrations push an actuator to its limit) gives the KL a floor, -log of its mass inside
    the box, that no actor can go below and that differs from state to state; charged in the TD
    target, it makes the states where demonstrations act at their limits look costly. Truncation
    removes the floor and leaves the actor's gradient unchanged (the mass does not depend on the
    action)."""
    kl_in_target: bool | None = None
    """nppac / kl: charge alpha x KL in the critic's TD target (the paper's soft value, a cost
    per step) as well as in the actor loss. False keeps the KL in the actor loss only, so that
    the KL's cost cannot make ending an episode early (falling) look cheap to the critic.
    Default (None): the env's preset (False on hopper, walker2d and ant)."""
    prior_in_buffer: bool = True
    """Store pi0's mean and std at s and s' with each transition (pi0 is fixed) instead of
    predicting them for every minibatch: same numbers, far less prior work per update."""

    def validate(self) -> TrainConfig:
        """Returns the config with every setting left to the env's preset resolved (episode_length,
        batch_size, kl_in_target, warmup_actions auto, critic_warmup), so that a run's record says
        what it ran, or raises a one-line ``ValueError`` naming every bad setting."""
        from kl_rl.envs import preset

        if self.algo in ALGO_PRESETS:
            named = ALGO_PRESETS[self.algo]
            unset = {k: v for k, v in named.items() if k != "algo" and getattr(self, k) is None}
            return dataclasses.replace(self, algo=named["algo"], **unset).validate()
        env_preset = preset(self.env)
        pick = lambda value, default: default if value is None else value  # noqa: E731
        recipe_name = pick(self.critic_recipe, "rlpd" if self.algo == "rlpd" else "sac")
        recipe = CRITIC_RECIPES.get(recipe_name, CRITIC_RECIPES["sac"])
        num_critics = pick(self.num_critics, recipe["num_critics"])
        resolved = dataclasses.replace(
            self, critic_recipe=recipe_name, num_critics=num_critics,
            critic_layernorm=pick(self.critic_layernorm, recipe["critic_layernorm"]),
            critic_subset=pick(self.critic_subset, pick(recipe["critic_subset"], num_critics)),
            utd=pick(self.utd, recipe["utd"]), actor_q=pick(self.actor_q, recipe["actor_q"]),
            demos_in_batch=pick(self.demos_in_batch, recipe["demos_in_batch"]),
            episode_length=pick(self.episode_length, env_preset.episode_length),
            batch_size=pick(self.batch_size, env_preset.batch_size), kl_in_target=self.charges_kl_in_target,
            critic_warmup=self.critic_warmup_steps,
            warmup_actions=self.warmup_actions if self.warmup_actions != "auto"
            else "policy" if self.warmup_with_policy else "random")
        if resolved != self:
            return resolved.validate()
        if self.algo not in ALGOS:
            raise ValueError(f"unknown algo '{self.algo}'; choose one of: {', '.join(ALGOS)}")
        from kl_rl.priors import REGISTRY as prior_kinds

        if self.prior not in prior_kinds:
            raise ValueError(f"unknown prior '{self.prior}'; choose one of: {', '.join(prior_kinds)}")
        if self.algo == "nppac" and self.prior != "gp":
            raise ValueError(f"algo nppac uses the gp prior (got prior {self.prior}); for another prior "
                             "use --algo kl --prior " + self.prior)
        at_least = {"num_envs": 1, "episode_length": 1, "total_steps": 1, "env_steps_per_epoch": 1, "utd": 1,
                    "batch_size": 1, "replay_size": 1, "num_critics": 1, "critic_subset": 1, "eval_episodes": 1,
                    "final_eval_episodes": 0,
                    "pretrain_epochs": 0, "mean_action_weight": 0, "pretrain_batch_size": 1, "learning_starts": 0,
                    "critic_warmup": 0}
        problems = [f"{name} must be >= {low} (got {getattr(self, name)})" for name, low in at_least.items()
                    if getattr(self, name) < low]
        if self.num_envs >= 1 and self.env_steps_per_epoch % self.num_envs:
            problems.append(f"env_steps_per_epoch ({self.env_steps_per_epoch}) must be a multiple of "
                            f"num_envs ({self.num_envs})")
        if self.critic_recipe not in CRITIC_RECIPES:
            problems.append(f"critic_recipe must be one of {', '.join(CRITIC_RECIPES)} (got {self.critic_recipe!r})")
        if self.critic_subset > self.num_critics >= 1:
            problems.append(f"critic_subset ({self.critic_subset}) is larger than the ensemble (num_critics "
                            f"{self.num_critics}); choose a subset of at most {self.num_critics}")
        if self.actor_q not in ACTOR_Q:
            problems.append(f"actor_q must be one of {', '.join(ACTOR_Q)} (got {self.actor_q!r})")
        if self.warmup_actions not in WARMUP_ACTIONS:
            problems.append(f"warmup_actions must be one of {', '.join(WARMUP_ACTIONS)} (got {self.warmup_actions!r})")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            problems.append(f"hidden_sizes must be positive widths (got {self.hidden_sizes})")
        if not problems and self.batch_size > self.buffer_capacity:
            problems.append(f"batch_size ({self.batch_size}) is larger than the replay buffer can hold "
                            f"({self.buffer_capacity} = min(replay_size, total_steps rounded up to epochs)); "
                            "lower batch-size or raise total-steps / replay-size")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def uses_prior(self) -> bool:
        """The objective has the KL term toward a behavioral prior (nppac, kl)."""
        return self.algo in ("nppac", "kl")

    def effective_settings(self) -> dict[str, Any]:
        """The settings as a JSON-like dict, without those the algo never reads (the KL term's for
        an algo without one), so that two runs that did the same compare equal even where a
        preset changed such a setting in between."""
        settings = json.loads(json.dumps(dataclasses.asdict(self)))
        inert = () if self.uses_prior else KL_TERM_SETTINGS
        return {k: v for k, v in settings.items() if k not in inert}

    @property
    def pretrains(self) -> bool:
        """The actor is pretrained on demonstrations before online training."""
        return self.algo in PRETRAINING_ALGOS and self.pretrain_epochs > 0

    @property
    def warmup_with_policy(self) -> bool:
        """The warm-up transitions come from the actor rather than uniform random actions."""
        if self.warmup_actions == "auto":
            from kl_rl.envs import preset

            return self.pretrains and preset(self.env).pretrained_warmup_actions == "policy"
        return self.warmup_actions == "policy"

    @property
    def critic_warmup_steps(self) -> int:
        """Transitions after ``learning_starts`` with critic-only updates (``critic_warmup`` resolved)."""
        if self.critic_warmup is not None:
            return self.critic_warmup
        from kl_rl.envs import preset

        return preset(self.env).pretrained_critic_warmup if self.pretrains else 0

    @property
    def charges_kl_in_target(self) -> bool:
        """``kl_in_target`` resolved: the option, else the env's preset (True where none)."""
        if self.kl_in_target is not None:
            return self.kl_in_target
        from kl_rl.envs import preset

        return preset(self.env).kl_in_target

    @property
    def uses_demos(self) -> bool:
        """Training needs demonstrations (a prior to fit, behavioral cloning, or the minibatch)."""
        return self.algo != "sac" or bool(self.demos_in_batch)

    @property
    def iters_per_epoch(self) -> int:
        """Vectorized env steps per epoch."""
        return self.env_steps_per_epoch // self.num_envs

    @property
    def updates_per_iter(self) -> int:
        """Critic updates after each vectorized env step (``utd * num_envs``; of them ``num_envs``
        come with an actor update)."""
        return self.utd * self.num_envs

    @property
    def num_epochs(self) -> int:
        """Epochs needed to collect ``total_steps`` transitions (rounded up)."""
        return -(-self.total_steps // self.env_steps_per_epoch)

    @property
    def buffer_capacity(self) -> int:
        return min(self.replay_size, self.num_epochs * self.env_steps_per_epoch)


def parse_overrides(items: Sequence[str], flag: str = "--set") -> dict[str, object]:
    """``name=value`` pairs for TrainConfig fields, typed by each field's annotation (None, True
    and False as such; hidden_sizes as ints joined by ``x``, e.g. 256x256); one-line ValueError
    naming the item otherwise."""
    fields = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    out: dict[str, object] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"{flag} takes name=value with a TrainConfig field (got {item!r}); "
                             f"fields: {', '.join(sorted(fields))}")
        kind = fields[name]
        try:
            if raw == "None" and "None" in kind:
                out[name] = None
            elif kind.startswith("bool"):
                out[name] = {"True": True, "False": False}[raw]
            elif kind.startswith("tuple"):
                out[name] = tuple(int(w) for w in raw.split("x"))
            elif kind.startswith("int"):
                out[name] = int(raw)
            elif kind.startswith("float"):
                out[name] = float(raw)
            else:
                out[name] = raw
        except (KeyError, ValueError):
            raise ValueError(f"{flag} {name}={raw}: not a value for {name} ({kind})") from None
    return out


def config_from_json(raw: dict) -> TrainConfig:
    """A TrainConfig from its ``dataclasses.asdict`` form as stored in JSON (tuples come back as
    lists; unknown keys, e.g. from newer versions, are ignored)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    if "warmup_actions" not in raw:  # written before the head-start fixes: the reference's recipe
        raw = {**raw, "warmup_actions": "random", "critic_warmup": 0, "mean_action_weight": 0.0, "kl_in_target": True}
    pretrains = raw.get("algo", "sac") != "sac" and raw.get("pretrain_epochs", 400) > 0
    if raw.get("warmup_actions") == "auto":  # recorded before settings were resolved: auto meant this then
        raw = {**raw, "warmup_actions": "policy" if pretrains else "random"}
    if "critic_warmup" in raw and raw["critic_warmup"] is None:
        raw = {**raw, "critic_warmup": 5_000 if pretrains else 0}
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known})


@struct.dataclass
class HParams:
    """Float hyperparameters, each a scalar array so a sweep can ``jax.vmap`` over them."""

    actor_lr: jnp.ndarray
    critic_lr: jnp.ndarray
    alpha_lr: jnp.ndarray
    gamma: jnp.ndarray
    tau: jnp.ndarray
    init_alpha: jnp.ndarray  # initial entropy temperature of SAC (tuned automatically)
    alpha: jnp.ndarray  # fixed weight of the KL term (nppac, kl)
    entropy_per_dim: jnp.ndarray  # SAC's target entropy per action dimension (sac, bc-sac, rlpd)
    demo_ratio: jnp.ndarray  # share of each minibatch drawn from the demonstrations (with demos_in_batch)

    @classmethod
    def create(
        cls,
        actor_lr: float = 3e-4,
        critic_lr: float = 3e-4,
        alpha_lr: float = 3e-4,
        gamma: float = 0.99,
        tau: float = 5e-3,
        init_alpha: float = 1.0,
        alpha: float = 0.1,
        entropy_per_dim: float = -1.0,
        demo_ratio: float = 0.5,
    ) -> HParams:
        """``entropy_per_dim``: the temperature is tuned toward an entropy of this times the action
        dimension; -1 is the SAC paper's choice, Brax's SAC and RLPD use -0.5 (more exploration).
        ``demo_ratio``: RLPD's symmetric sampling, half of each minibatch from the demonstrations
        (used only where the config keeps them in the batch)."""
        f = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
        return cls(f(actor_lr), f(critic_lr), f(alpha_lr), f(gamma), f(tau), f(init_alpha), f(alpha),
                   f(entropy_per_dim), f(demo_ratio))


# Where each float hyperparameter makes sense: (low, high, low open, high open, why); None: unbounded.
HPARAM_RANGES: dict[str, tuple[float | None, float | None, bool, bool, str]] = {
    "actor_lr": (0.0, None, True, True, "a learning rate"),
    "critic_lr": (0.0, None, True, True, "a learning rate"),
    "alpha_lr": (0.0, None, True, True, "a learning rate"),
    "gamma": (0.0, 1.0, True, True, "the discount factor"),
    "tau": (0.0, 1.0, True, False, "the target critics' Polyak rate"),
    "init_alpha": (0.0, None, True, True, "SAC's initial temperature"),
    "alpha": (0.0, None, True, True, "the KL weight (for no KL term use --algo sac)"),
    "entropy_per_dim": (None, None, True, True, "the target entropy per action dimension"),
    "demo_ratio": (0.0, 1.0, False, False, "the share of each minibatch drawn from the demonstrations"),
}


def hparam_problem(name: str, value: float, flag: str | None = None) -> str | None:
    """A one-line complaint when ``value`` lies outside ``name``'s range (HPARAM_RANGES), else None."""
    low, high, low_open, high_open, why = HPARAM_RANGES[name]
    bad = value != value or (low is not None and (value <= low if low_open else value < low)) or (
        high is not None and (value >= high if high_open else value > high))
    if not bad:
        return None
    interval = (f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}" if high is not None
                else f"{'>' if low_open else '>='} {low:g}")
    where = f"in {interval}" if high is not None else interval
    return f"{flag or name.replace('_', '-')} must be {where} (got {value}): it is {why}"


@dataclasses.dataclass(frozen=True)
class HParamOptions:
    """The float hyperparameters as options, shared by ``kl-rl train``, ``sweep`` and ``demos``
    (and by library callers): ``hparams(env)`` turns them into ``HParams``."""

    lr: float = 3e-4
    """Adam learning rate of the actor, the critics and the temperature."""
    critic_lr: float | None = None
    """The critics' learning rate, when it differs from --lr."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 5e-3
    """Polyak rate of the target critics."""
    alpha: float | None = None
    """Fixed weight of the KL term (nppac, kl); default: the env's preset (halfcheetah 0.1;
    hopper, walker2d, ant 3.0; the reference's values are in docs/method.md)."""
    entropy_per_dim: float | None = None
    """SAC's (sac, bc-sac, rlpd) target entropy per action dimension: -1 as in the SAC paper
    (the default), -0.5 as Brax's SAC and RLPD (the default of rlpd; more exploration)."""
    demo_ratio: float | None = None
    """Share of each minibatch drawn from the demonstrations (default 0.5, RLPD's). rlpd keeps
    them in the batch; with another algo a ratio above 0 puts them there (--demos-in-batch)."""

    def hparams(self, env: str, algo: str = "sac") -> HParams:
        from kl_rl.envs import preset

        given = {"actor_lr": ("lr", self.lr), "critic_lr": ("critic-lr", self.critic_lr),
                 "gamma": ("gamma", self.gamma), "tau": ("tau", self.tau), "alpha": ("alpha", self.alpha),
                 "demo_ratio": ("demo-ratio", self.demo_ratio)}
        problems = [hparam_problem(name, value, flag) for name, (flag, value) in given.items() if value is not None]
        if any(problems):
            raise ValueError("; ".join(p for p in problems if p))
        entropy = self.entropy_per_dim if self.entropy_per_dim is not None else -0.5 if algo == "rlpd" else -1.0
        return HParams.create(actor_lr=self.lr, critic_lr=self.lr if self.critic_lr is None else self.critic_lr,
                              alpha_lr=self.lr, gamma=self.gamma, tau=self.tau,
                              alpha=preset(env).alpha if self.alpha is None else self.alpha,
                              entropy_per_dim=entropy, demo_ratio=0.5 if self.demo_ratio is None else self.demo_ratio)

    def configure(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` with the demonstrations in the batch where an explicit --demo-ratio above 0
        asks for them and --demos-in-batch was left unset."""
        if self.demo_ratio is None or cfg.demos_in_batch is not None:
            return cfg
        return dataclasses.replace(cfg, demos_in_batch=self.demo_ratio > 0)

    def conflicts(self, env: str, saved: dict[str, float], algo: str = "sac") -> list[str]:
        """The options set away from their defaults whose HParams differ from ``saved`` (a run's
        recorded hparams; a field it predates counts as its default), as flags."""
        default, mine = HParamOptions(), self.hparams(env, algo)
        recorded = {**{k: float(v) for k, v in dataclasses.asdict(HParams.create()).items()}, **saved}
        out = []
        for f in dataclasses.fields(self):
            moved = dataclasses.replace(default, **{f.name: getattr(self, f.name)}).hparams(env, algo)
            touched = [h for h, v in dataclasses.asdict(moved).items() if v != getattr(default.hparams(env, algo), h)]
            if any(abs(float(getattr(mine, h)) - recorded[h]) > 1e-6 * max(1.0, abs(recorded[h])) for h in touched):
                out.append("--" + f.name.replace("_", "-"))
        return out
