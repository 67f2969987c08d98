"""The Adroit door task on MJX: a 24-joint hand on a 4-joint arm must grasp the handle, turn the
latch and swing the door open (Rajeswaran et al. 2018, DAPG's ``door-v0``; the N-PPAC paper's
``door-binary-v0``).

The scene is the Adroit door model shipped in the ``gymnasium-robotics`` package, read from the
installed package and changed in memory for MJX (``build_model``): MJX's JAX collision code has
no cylinder pairs, so every cylinder becomes a capsule of the same radius and half-length (the
latch's bolt still meets the frame's post, so the latch must be turned before the door opens;
tested); the floor plane and the touch sensors (nothing reaches or reads them) are dropped; the
solver's no-slip pass, which MJX lacks, is off; and MJX solves every candidate contact pair on
every step, so the pairs that do not shape the task are off (the table, the hand against the
frame's posts, the thumb base against the hand): 223 contacts instead of 427, and open-loop
replays of DAPG's human demonstrations that track their recorded rewards (mean |difference| of an
episode's return 39, against 344 with every pair at the same solver settings).

Semantics follow mj_envs' ``door_v0.py``: the wrist and finger actuators' gain and bias are
overridden as there; actions in [-1, 1] map to mid + a x half-range of each actuator's control
range; 5 physics steps of 2 ms per env step; 200 steps per episode (a truncation: kl_rl never
treats the time limit as terminal, the reference code does); each reset draws the door frame's
position uniformly, a model parameter that each env carries in its own state. The observation
(39): qpos[1:-2], latch angle, hinge angle, palm position, handle position, palm - handle, and
+1 / -1 for a hinge past 1.0 rad.

Rewards (``reward=``): ``binary`` goal_achieved - 1 (door-binary-v0, the task), ``zero-one``
goal_achieved (door-zero-one-v0, the reference code's configs), ``dense`` door-v0's shaped
reward (for training experts). goal_achieved: hinge >= 1.35 rad. An episode succeeds when the
goal holds on more than 25 of its steps (mj_envs' ``evaluate_success``).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kl_rl.envs import _import_brax

_import_brax()  # quietly, before brax.envs.base loads the package
from brax.envs.base import Env, State  # noqa: E402

FRAME_SKIP = 5
GOAL_ANGLE = 1.35  # rad of the hinge: the door is open
SUCCESS_STEPS = 25  # an episode succeeds when the door is open on more than this many steps
DOOR_LOW = (-0.3, 0.25, 0.252)  # the door frame's position is drawn uniformly in [low, high]
DOOR_HIGH = (-0.2, 0.35, 0.35)
REWARDS = ("binary", "zero-one", "dense")


class DoorModelError(FileNotFoundError):
    """The door's model files (from gymnasium-robotics) are missing."""


def door_xml() -> Path:
    """The Adroit door scene inside the installed gymnasium-robotics package (found without
    importing it: its import registers gymnasium envs and prints warnings)."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise DoorModelError("the door task reads its model from the gymnasium-robotics package; "
                             "install it with `pip install gymnasium-robotics` (make install does)")
    path = Path(spec.submodule_search_locations[0]) / "envs" / "assets" / "adroit_hand" / "adroit_door.xml"
    if not path.exists():
        raise DoorModelError(f"no door model at {path}; reinstall gymnasium-robotics")
    return path


@functools.lru_cache(maxsize=4)
def build_model(reduce_pairs: bool = True, iterations: tuple[int, int] = (8, 16)) -> Any:
    """The MuJoCo model of the door scene, changed for MJX as the module docstring says, with
    mj_envs' actuator overrides applied. ``reduce_pairs`` False keeps every contact pair and
    ``iterations`` sets the solver's (Newton, line-search) caps: the variants
    ``benchmarks/door_replay.py`` compares."""
    import mujoco

    spec = mujoco.MjSpec.from_file(str(door_xml()))
    for sensor in list(spec.sensors):
        spec.delete(sensor)
    for geom in spec.geoms:
        if geom.type == mujoco.mjtGeom.mjGEOM_CYLINDER:
            geom.type = mujoco.mjtGeom.mjGEOM_CAPSULE
        if geom.name == "ground":
            geom.contype, geom.conaffinity = 0, 0
    spec.option.noslip_iterations = 0
    model = spec.compile()
    # Contact pairs that MJX would otherwise solve on every step, whether touching or not: the
    # table (nothing reaches it), the thumb base's boxes against the rest of the hand, and the hand
    # against the frame's posts. The latch keeps its contact with the posts (the lock) through a
    # second contact bit, and the hand keeps every contact with the door and the latch.
    for geom in range(model.ngeom if reduce_pairs else 0):
        body = model.body(model.geom_bodyid[geom]).name
        if body == "table":
            model.geom_contype[geom] = model.geom_conaffinity[geom] = 0
        elif body in ("thbase", "thhub"):
            model.geom_conaffinity[geom] = 0
        elif body == "frame":
            model.geom_conaffinity[geom] = 2
        elif body == "latch":
            model.geom_contype[geom] = 3
    # MJX runs the solver's iterations in lockstep over a vmapped batch, so the XML's caps (20
    # Newton and 50 line-search iterations) cost every env their worst case. Replays of the 25
    # human demonstrations gave the same rewards with 8 / 16 as with 20 / 50
    # (benchmarks/door_replay.py).
    model.opt.iterations, model.opt.ls_iterations = iterations
    actuator = {model.actuator(i).name: i for i in range(model.nu)}
    wrist = slice(actuator["A_WRJ1"], actuator["A_WRJ0"] + 1)
    fingers = slice(actuator["A_FFJ3"], actuator["A_THJ0"] + 1)
    model.actuator_gainprm[wrist, :3] = (10.0, 0.0, 0.0)
    model.actuator_gainprm[fingers, :3] = (1.0, 0.0, 0.0)
    model.actuator_biasprm[wrist, :3] = (0.0, -10.0, 0.0)
    model.actuator_biasprm[fingers, :3] = (0.0, -1.0, 0.0)
    return model


def dense_reward(hinge: jax.Array, palm: jax.Array, handle: jax.Array, qvel: jax.Array) -> jax.Array:
    """door-v0's shaped reward: approach the handle, open the hinge toward 1.57 rad, a small
    velocity cost, and bonuses 2 / 8 / 10 past 0.2 / 1.0 / 1.35 rad."""
    reward = -0.1 * jnp.linalg.norm(palm - handle) - 0.1 * (hinge - 1.57) ** 2 - 1e-5 * jnp.sum(qvel**2)
    return reward + 2.0 * (hinge > 0.2) + 8.0 * (hinge > 1.0) + 10.0 * (hinge > GOAL_ANGLE)


class Door(Env):
    """One door env (brax ``Env`` interface; ``kl_rl.envs.VecEnv`` vectorizes it). The state's
    ``info["door_pos"]`` [3] is this episode's door frame position; ``metrics["goal_achieved"]``
    is 1 on the steps where the door is open."""

    success_metric = "goal_achieved"  # VecEnv and evaluation count these steps per episode
    success_steps = SUCCESS_STEPS

    def __init__(self, reward: str = "binary", model: Any = None):
        if reward not in REWARDS:
            raise ValueError(f"unknown door reward {reward!r}; choose one of {', '.join(REWARDS)}")
        from mujoco import mjx

        self.reward_kind = reward
        self.mj_model = model if model is not None else build_model()  # a build_model variant
        self.model = mjx.put_model(self.mj_model)
        m = self.mj_model
        self._frame = m.body("frame").id
        self._hinge = int(m.jnt_qposadr[m.joint("door_hinge").id])
        self._latch = int(m.jnt_qposadr[m.joint("latch").id])
        self._palm, self._handle = m.site("S_grasp").id, m.site("S_handle").id
        ctrl = np.asarray(m.actuator_ctrlrange, np.float32)  # [28, 2]
        self._mid, self._half = jnp.asarray(ctrl.mean(1)), jnp.asarray(0.5 * (ctrl[:, 1] - ctrl[:, 0]))

    def model_at(self, door_pos: jax.Array) -> Any:
        """The model with the door frame at ``door_pos`` [3] (inside a vmap: one per env)."""
        return self.model.replace(body_pos=self.model.body_pos.at[self._frame].set(door_pos))

    @property
    def dt(self) -> float:
        """Seconds per env step (the control period)."""
        return float(self.mj_model.opt.timestep) * FRAME_SKIP

    def render_model(self, info: dict[str, Any]) -> Any:
        """A copy of the MuJoCo model with this episode's door frame position (``info["door_pos"]``),
        for drawing the episode (``kl_rl.render``)."""
        import copy

        model = copy.copy(self.mj_model)
        model.body_pos[self._frame] = np.asarray(info["door_pos"], np.float64)
        return model

    def _obs(self, data: Any) -> jax.Array:
        qpos = data.qpos
        palm, handle = data.site_xpos[self._palm], data.site_xpos[self._handle]
        hinge = qpos[self._hinge]
        is_open = jnp.where(hinge > 1.0, 1.0, -1.0)
        return jnp.concatenate([qpos[1:-2], qpos[self._latch][None], hinge[None], palm, handle, palm - handle,
                                is_open[None]]).astype(jnp.float32)  # [39]

    def reset(self, rng: jax.Array) -> State:
        """The model's initial joint positions at rest, the door frame at a uniform draw."""
        door_pos = jax.random.uniform(rng, (3,), minval=jnp.asarray(DOOR_LOW), maxval=jnp.asarray(DOOR_HIGH))
        return self.set_state(self.model.qpos0, jnp.zeros(self.model.nv), door_pos)

    def set_state(self, qpos: jax.Array, qvel: jax.Array, door_pos: jax.Array) -> State:
        """A state at given joint positions [30], velocities [30] and door position [3] (DAPG's
        ``init_state_dict``), for replaying recorded episodes."""
        from mujoco import mjx

        data = mjx.make_data(self.model).replace(qpos=jnp.asarray(qpos, jnp.float32),
                                                 qvel=jnp.asarray(qvel, jnp.float32))
        data = mjx.forward(self.model_at(door_pos), data)
        zero = jnp.zeros((), jnp.float32)
        return State(pipeline_state=data, obs=self._obs(data), reward=zero, done=zero,
                     metrics={"goal_achieved": zero}, info={"door_pos": jnp.asarray(door_pos, jnp.float32)})

    def step(self, state: State, action: jax.Array) -> State:
        from mujoco import mjx

        model = self.model_at(state.info["door_pos"])
        ctrl = self._mid + jnp.clip(action, -1.0, 1.0) * self._half
        data = state.pipeline_state.replace(ctrl=ctrl)
        data = jax.lax.fori_loop(0, FRAME_SKIP, lambda _, d: mjx.step(model, d), data)
        hinge = data.qpos[self._hinge]
        goal = (hinge >= GOAL_ANGLE).astype(jnp.float32)
        if self.reward_kind == "binary":
            reward = goal - 1.0
        elif self.reward_kind == "zero-one":
            reward = goal
        else:
            reward = dense_reward(hinge, data.site_xpos[self._palm], data.site_xpos[self._handle], data.qvel)
        return state.replace(pipeline_state=data, obs=self._obs(data), reward=reward.astype(jnp.float32),
                             done=jnp.zeros((), jnp.float32), metrics={"goal_achieved": goal})

    @property
    def observation_size(self) -> int:
        return 39

    @property
    def action_size(self) -> int:
        return int(self.mj_model.nu)

    @property
    def backend(self) -> str:
        return "mjx"
