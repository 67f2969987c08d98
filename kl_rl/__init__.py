"""kl_rl: KL-regularized reinforcement learning from expert demonstrations, in JAX."""

__version__ = "0.1.0"
