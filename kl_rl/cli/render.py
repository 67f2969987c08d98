"""``kl-rl render``: one episode of a run's policy as an interactive 3-D page or a video."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from kl_rl import compile_cache


@dataclass
class RenderArgs:
    """Replay one deterministic episode of a run's policy in 3-D: --out episode.html writes a
    self-contained page (drag to turn, scroll to zoom; no server, no network, no GPU needed to
    open it); --out episode.mp4 a video through MuJoCo's offscreen renderer (needs EGL or OSMesa)."""

    run: Annotated[Path, tyro.conf.Positional]
    """A run folder of kl-rl train (or one run folder inside a sweep folder)."""
    out: Path = Path("episode.html")
    """episode.html (interactive page) or episode.mp4 (video)."""
    checkpoint: int | None = None
    """The policy of the checkpoint at this many env steps instead of the final one."""
    seed: int = 0
    """Seed of the episode's initial state."""
    stochastic: bool = False
    """Sample actions instead of the deterministic tanh(mean)."""
    env: str | None = None
    """Another env of the same task (e.g. a door-dense expert on door; default: the run's env)."""
    follow: bool = True
    """Keep the robot centred in the page (the locomotion robots run tens of metres)."""
    compile_cache: str = str(compile_cache.DEFAULT_DIR)
    """Persistent JAX compilation cache folder ("" turns it off); env KL_RL_COMPILE_CACHE."""


def render(args: RenderArgs) -> int:
    from kl_rl.evaluation import check_run
    from kl_rl.render import RenderError

    if args.out.suffix.lower() not in (".html", ".mp4"):
        raise RenderError(f"--out {args.out}: write an .html page or an .mp4 video")
    if args.out.suffix.lower() == ".mp4" and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"  # headless: EGL (read when MuJoCo loads, so before anything imports it)
    check_run(args.run, args.env)
    compile_cache.enable(args.compile_cache)
    from kl_rl.evaluation import load_run_policy
    from kl_rl.render import record_episode, write_html, write_video

    policy = load_run_policy(args.run, args.checkpoint)
    episode = record_episode(policy.cfg, policy.actor_params, args.seed, args.env, args.stochastic)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{episode.env} · {policy.cfg.algo} · {policy.source} policy ({policy.env_steps:,} env steps)"
    if args.out.suffix.lower() == ".html":
        write_html(episode, args.out, title, args.follow)
    else:
        write_video(episode, args.out)
    steps = episode.qpos.shape[0]
    print(f"{title}: {steps} steps, return {episode.episode_return:.1f}"
          + ("" if episode.success is None else f", {'success' if episode.success else 'no success'}")
          + f"; wrote {args.out}")
    return 0
