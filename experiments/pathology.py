"""How fast does the KL blow up as the prior's std collapses? (the paper's Proposition 1)

For a Gaussian policy pi = N(mu, sigma^2) and prior pi0 = N(mu0, sigma0^2) (diagonal, d dims),
KL(pi || pi0) = sum log(sigma0/sigma) + (sigma^2 + (mu - mu0)^2) / (2 sigma0^2) - 1/2, and its
gradient with respect to the policy parameters theta = (mu, log sigma) is
(mu - mu0) / sigma0^2 and sigma^2 / sigma0^2 - 1: both grow like 1/sigma0^2. The script sweeps
sigma0 down to 1e-3 and puts the closed forms next to the project's own estimator
(``kl_rl.losses.kl_estimate`` on reparameterized samples, the estimate training uses), for the
plain Gaussian and for the tanh-squashed policy the actor really is. Writes
``results/pathology/{pathology.png, table.md, pathology.json}``.

    python experiments/pathology.py [--quick] [--out results/pathology]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import experiment_parser, finish, markdown_table, resolve_out  # noqa: E402

from kl_rl import losses  # noqa: E402
from kl_rl.distributions import gaussian_log_prob, sample_tanh_gaussian  # noqa: E402

MU = np.array([0.3, -0.2, 0.1])  # policy mean (pre-tanh for the squashed policy)
SIGMA = np.array([0.3, 0.2, 0.25])  # policy std
MU0 = np.array([0.25, -0.1, 0.0])  # prior mean


def closed_form(sigma0: float) -> tuple[float, float]:
    """KL(N(MU, SIGMA^2) || N(MU0, sigma0^2)) and the norm of its gradient in (mu, log sigma)."""
    kl = np.sum(np.log(sigma0 / SIGMA) + (SIGMA**2 + (MU - MU0) ** 2) / (2 * sigma0**2) - 0.5)
    grad = np.concatenate([(MU - MU0) / sigma0**2, SIGMA**2 / sigma0**2 - 1.0])
    return float(kl), float(np.linalg.norm(grad))


def estimated(key: jax.Array, sigma0: float, num_samples: int, squashed: bool) -> dict[str, float]:
    """Mean and standard error of the one-sample KL estimate over ``num_samples`` reparameterized
    samples, and the norm of the gradient of their mean in (mu, log sigma). Squashed: pi is the
    tanh-Gaussian and pi0 is scored at the squashed action, exactly as in the actor loss."""
    mu0 = jnp.asarray(MU0)
    scale0 = jnp.full_like(mu0, sigma0)

    def kl_samples(theta):
        mean, log_std = theta
        mean = jnp.broadcast_to(mean, (num_samples, mean.shape[0]))
        log_std = jnp.broadcast_to(log_std, mean.shape)
        if squashed:
            action, log_prob = sample_tanh_gaussian(key, mean, log_std)
        else:
            action = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
            log_prob = gaussian_log_prob(action, mean, log_std)
        return losses.kl_estimate(log_prob, losses.prior_log_prob(action, mu0, scale0))  # [N]

    theta = (jnp.asarray(MU), jnp.log(jnp.asarray(SIGMA)))
    samples = kl_samples(theta)
    grad = jax.grad(lambda t: jnp.mean(kl_samples(t)))(theta)
    return {"kl": float(jnp.mean(samples)), "kl_se": float(jnp.std(samples) / np.sqrt(num_samples)),
            "grad_norm": float(jnp.sqrt(sum(jnp.sum(g**2) for g in grad)))}


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Log-log slope over the smallest half of sigma0 (the asymptotic regime)."""
    k = max(2, len(x) // 2)
    order = np.argsort(x)[:k]
    return float(np.polyfit(np.log(x[order]), np.log(y[order]), 1)[0])


def main(argv: list[str] | None = None) -> int:
    args = experiment_parser(__doc__, "pathology").parse_args(argv)
    started = time.perf_counter()
    out = resolve_out(args)
    sigma0s = np.geomspace(1.0, 1e-3, 7 if args.quick else 19)
    num_samples = 20_000 if args.quick else 1_000_000
    rows = []
    with jax.enable_x64(True):
        key_plain, key_tanh = jax.random.split(jax.random.key(args.seed))
        for sigma0 in sigma0s:
            kl, grad = closed_form(sigma0)
            plain = estimated(key_plain, sigma0, num_samples, squashed=False)
            tanh = estimated(key_tanh, sigma0, num_samples, squashed=True)
            rows.append({"sigma0": float(sigma0), "kl_closed": kl, "grad_closed": grad,
                         "kl_estimate": plain["kl"], "kl_estimate_se": plain["kl_se"],
                         "grad_estimate": plain["grad_norm"], "kl_tanh": tanh["kl"], "grad_tanh": tanh["grad_norm"]})
    col = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    slopes = {name: slope(col["sigma0"], col[name]) for name in
              ("kl_closed", "kl_estimate", "kl_tanh", "grad_closed", "grad_estimate", "grad_tanh")}
    _figure(col, out / "pathology.png")
    header = ["sigma0", "KL closed form", "KL estimate (± s.e.)", "KL tanh-policy estimate",
              "‖∇KL‖ closed form", "‖∇KL‖ estimate", "‖∇KL‖ tanh-policy estimate"]
    body = [[f"{r['sigma0']:.3g}", f"{r['kl_closed']:.4g}", f"{r['kl_estimate']:.4g} ± {r['kl_estimate_se']:.2g}",
             f"{r['kl_tanh']:.4g}", f"{r['grad_closed']:.4g}", f"{r['grad_estimate']:.4g}", f"{r['grad_tanh']:.4g}"]
            for r in rows]
    text = (f"Policy N(mu={MU.tolist()}, sigma={SIGMA.tolist()}), prior mean {MU0.tolist()}; "
            f"{num_samples:,} reparameterized samples per sigma0 (float64).\n\n"
            + markdown_table(header, body)
            + "\n\nLog-log slope against sigma0 over the smaller half of sigma0 (Proposition 1 predicts -2):\n\n"
            + markdown_table(["quantity", "slope"], [[k, f"{v:.3f}"] for k, v in slopes.items()]) + "\n")
    finish(args, "pathology", text, {"rows": rows, "slopes": slopes, "num_samples": num_samples}, started)
    return 0


def _figure(col: dict[str, np.ndarray], path: Path) -> None:
    from kl_rl.plots import _save, plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    s = col["sigma0"]
    for ax, (name, closed, est, tanh) in zip(axes, [("KL(π‖π0)", "kl_closed", "kl_estimate", "kl_tanh"),
                                                    ("‖∇θ KL‖", "grad_closed", "grad_estimate", "grad_tanh")],
                                             strict=True):
        ax.loglog(s, col[closed], "-", color="C0", lw=2, label="closed form (Gaussian π)")
        ax.loglog(s, col[est], "o", color="C1", ms=4, label="kl_rl estimator (Gaussian π)")
        ax.loglog(s, col[tanh], "x", color="C2", ms=5, label="kl_rl estimator (tanh-Gaussian π)")
        ref = col[closed][-1] * (s / s[-1]) ** -2.0
        ax.loglog(s, ref, ":", color="0.5", label="∝ 1/σ0²")
        ax.set(xlabel="prior std σ0", title=name)
        ax.invert_xaxis()
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle("Proposition 1: the KL term and its gradient grow like 1/σ0² as the prior's std collapses",
                 fontsize=10)
    fig.tight_layout()
    _save(fig, path)


if __name__ == "__main__":
    sys.exit(main())
