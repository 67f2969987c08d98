"""Actor (tanh-Gaussian policy head) and an ensemble of Q critics, as flax linen modules."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
    """ReLU multilayer perceptron with a linear output layer; with ``layer_norm`` each hidden
    layer is normalized before its ReLU (RLPD's critics: it bounds Q's extrapolation to actions
    far from the data)."""

    hidden_sizes: Sequence[int]
    out_size: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden_sizes:
            x = nn.Dense(width)(x)
            x = nn.relu(nn.LayerNorm()(x) if self.layer_norm else x)
        return nn.Dense(self.out_size)(x)


class Actor(nn.Module):
    """Gaussian policy head before the tanh squashing: obs [B, o] -> (mean, log_std) [B, a]."""

    hidden_sizes: Sequence[int]
    action_size: int
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden_sizes, 2 * self.action_size)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


class Critics(nn.Module):
    """``num_critics`` independent Q networks: (obs [B, o], action [B, a]) -> q [num_critics, B].

    Separate MLPs rather than an ``nn.vmap`` ensemble: on CPU the batched matmuls of the vmapped
    form measured ~7% slower per SAC update (228 vs 245 updates/s for one update).
    """

    hidden_sizes: Sequence[int]
    num_critics: int = 2
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        qs = [MLP(self.hidden_sizes, 1, self.layer_norm)(x)[..., 0] for _ in range(self.num_critics)]
        return jnp.stack(qs)

