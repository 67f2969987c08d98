"""``kl-rl demos import``: demonstrations in DAPG's pickle format into kl_rl's .npz + .json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro


@dataclass
class DemosImportArgs:
    """Convert DAPG door demonstrations (a pickled list of episodes) into a kl_rl demonstrations
    file: actions clipped into [-1, 1], rewards recomputed as door-binary's, successes counted. The
    pickle is read with an unpickler that admits only numpy arrays and plain containers."""

    path: Annotated[Path, tyro.conf.Positional]
    """The DAPG pickle, e.g. door-v0_demos.pickle."""
    out: Path
    """Output file (.npz, with its .json beside it)."""
    overwrite: bool = False
    """Replace an existing output file."""


def demos_import(args: DemosImportArgs) -> int:
    from kl_rl.dapg import import_dapg
    from kl_rl.demos import DemosError, save

    out = args.out.with_suffix(".npz")
    if out.exists() and not args.overwrite:
        raise DemosError(f"{out} already exists; pass --overwrite to replace it or choose another --out")
    demos = import_dapg(args.path)
    path = save(demos, out)
    meta = demos.metadata
    print(f"{demos.num_episodes} episodes, {demos.num_steps} steps; {sum(meta['successes'])} of "
          f"{demos.num_episodes} succeed (door open on more than 25 steps); {meta['actions_clipped']} action "
          f"values clipped into [-1, 1]; wrote {path} and {path.with_suffix('.json')}")
    return 0
