"""The door task: the MJX port's observation, reset ranges, rewards and success rule, the latch,
and the DAPG importer (and its refusal to run code from a pickle). The training run on door is in
test_door_training.py (its own file, so that pytest-xdist gives it its own worker)."""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kl_rl.demos import DemosError

DAPG = Path(__file__).resolve().parents[2] / "shared" / "data" / "dapg" / "door-v0_demos.pickle"
needs_dapg = pytest.mark.skipif(not DAPG.exists(), reason="DAPG's human door demonstrations (../shared/data/dapg) "
                                "are third-party data kept outside the repository and absent here")


# ---- pure functions: the success rule and the shaped reward ---------------------------------------------------


def test_success_needs_the_door_open_on_more_than_25_steps():
    from kl_rl.envs.door import SUCCESS_STEPS
    from kl_rl.rollout import successes

    goal = np.zeros((200, 4))
    goal[:26, 0] = 1  # 26 steps: a success
    goal[:25, 1] = 1  # 25 steps: not
    goal[100:126, 2] = 1  # anywhere in the episode
    goal[100:126, 3] = 1
    valid = np.ones((200, 4), bool)
    valid[110:, 3] = False  # the episode ended after 10 of its goal steps
    np.testing.assert_array_equal(successes(goal, valid, SUCCESS_STEPS), [True, False, True, False])


def test_dense_reward_is_door_v0s_shaped_reward():
    from kl_rl.envs.door import dense_reward

    palm, handle, qvel = jnp.array([0.3, 0.0, 0.0]), jnp.array([0.0, 0.4, 0.0]), jnp.full(30, 2.0)
    base = -0.1 * 0.5 - 1e-5 * 120.0  # |palm - handle| = 0.5, sum qvel^2 = 120
    for hinge, bonus in ((0.1, 0.0), (0.5, 2.0), (1.2, 10.0), (1.4, 20.0)):
        expected = base - 0.1 * (hinge - 1.57) ** 2 + bonus
        np.testing.assert_allclose(dense_reward(jnp.float32(hinge), palm, handle, qvel), expected, rtol=1e-5)


# ---- the MJX env --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def door():
    from kl_rl.envs.door import Door

    return Door("binary")


@pytest.fixture(scope="module")
def push(door):
    """(latch angle, hinge angle, hinge torque) -> per-step (obs, reward, goal) over 60 steps with a
    zero action, the torque applied to the hinge throughout; one compiled program."""
    m = door.mj_model
    hinge_dof = int(m.jnt_dofadr[m.joint("door_hinge").id])

    @jax.jit
    def run(latch: jax.Array, hinge: jax.Array, torque: jax.Array):
        qpos = jnp.zeros(m.nq).at[door._latch].set(latch).at[door._hinge].set(hinge)
        state = door.set_state(qpos, jnp.zeros(m.nv), jnp.array([-0.25, 0.3, 0.3]))
        force = jnp.zeros(m.nv).at[hinge_dof].set(torque)

        def step(state, _):
            state = state.replace(pipeline_state=state.pipeline_state.replace(qfrc_applied=force))
            state = door.step(state, jnp.zeros(m.nu))
            return state, (state.obs, state.reward, state.metrics["goal_achieved"])

        return jax.lax.scan(step, state, None, length=60)[1]

    return lambda *args: jax.device_get(run(*map(jnp.float32, args)))


def test_reset_draws_the_door_position_and_observes_39_values(door):
    from kl_rl.envs.door import DOOR_HIGH, DOOR_LOW

    states = jax.jit(jax.vmap(door.reset))(jax.random.split(jax.random.key(0), 64))
    obs, pos = np.asarray(states.obs), np.asarray(states.info["door_pos"])
    assert obs.shape == (64, 39) and obs.dtype == np.float32 and np.isfinite(obs).all()
    assert door.observation_size == 39 and door.action_size == 28
    assert (pos >= DOOR_LOW).all() and (pos <= DOOR_HIGH).all()
    assert (pos.max(0) - pos.min(0) > 0.05).all()  # spread over the range, one draw per env
    np.testing.assert_allclose(obs[:, 27:29], 0.0, atol=1e-6)  # latch and hinge closed
    np.testing.assert_array_equal(obs[:, 38], -1.0)  # the door is not open
    np.testing.assert_allclose(obs[:, 35:38], obs[:, 29:32] - obs[:, 32:35], atol=1e-6)  # palm - handle
    # The handle moves with the door frame: the handle minus the frame's position is the same everywhere.
    assert np.std(obs[:, 32:35] - pos, axis=0).max() < 1e-5


def test_binary_reward_and_the_open_flag_follow_the_hinge(push):
    obs, reward, goal = push(1.5, 1.45, 0.0)  # an open door, left alone
    assert goal[0] == 1 and reward[0] == 0.0 and obs[0, 38] == 1.0
    obs, reward, goal = push(1.5, 1.1, 0.0)  # past 1.0 rad (the open flag) but short of the goal
    assert goal[0] == 0 and reward[0] == -1.0 and obs[0, 38] == 1.0
    obs, reward, goal = push(0.0, 0.0, 0.0)
    assert goal[0] == 0 and reward[0] == -1.0 and obs[0, 38] == -1.0


def test_the_latch_must_be_turned_before_the_door_opens(push):
    latched = push(0.0, 0.0, 20.0)[0][:, 28]  # pull hard on the closed, latched door
    unlatched = push(1.5, 0.0, 20.0)[0][:, 28]  # the same pull with the latch turned
    assert latched.max() < 0.05
    assert unlatched.max() > 0.3


# ---- the DAPG importer ----------------------------------------------------------------------------------------


def _dapg_episode(length: int, open_steps: int, rng: np.random.Generator) -> dict:
    obs = rng.normal(size=(length, 39))
    obs[:, 28] = 0.0
    obs[length - open_steps:, 28] = 1.5  # the hinge past 1.35 on the last open_steps observations
    actions = rng.uniform(-1.2, 1.2, size=(length, 28))  # human actions reach a little past the box
    return {"observations": obs, "actions": actions, "rewards": rng.normal(size=length),
            "init_state_dict": {"qpos": np.zeros(30), "qvel": np.zeros(30), "door_body_pos": np.zeros(3)}}


def test_import_clips_actions_recomputes_rewards_and_round_trips(tmp_path):
    from kl_rl import demos as demos_lib
    from kl_rl.dapg import import_dapg

    rng = np.random.default_rng(0)
    episodes = [_dapg_episode(60, 30, rng), _dapg_episode(40, 10, rng)]
    path = tmp_path / "demos.pickle"
    path.write_bytes(pickle.dumps(episodes))
    demos = import_dapg(path)
    assert demos.num_episodes == 2 and demos.num_steps == 100
    np.testing.assert_array_equal(demos.episode_lengths, [60, 40])
    assert np.abs(demos.actions).max() <= 1.0
    np.testing.assert_allclose(demos.actions[:60], np.clip(episodes[0]["actions"], -1, 1), rtol=1e-6)
    # Reward goal - 1, the goal read from the next observation's hinge (the last step: its own).
    np.testing.assert_array_equal(demos.rewards[:60], np.r_[-np.ones(29), np.zeros(31)])
    np.testing.assert_array_equal(demos.episode_returns, [-29.0, -29.0])
    assert demos.metadata["successes"] == [True, False]  # 31 goal steps > 25; 11 are not
    assert demos.metadata["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not demos.terminals.any() and demos.truncations.sum() == 2
    back = demos_lib.load(demos_lib.save(demos, tmp_path / "door"), obs_size=39, action_size=28)
    for name in demos_lib.ARRAYS:
        np.testing.assert_array_equal(getattr(back, name), getattr(demos, name))


class _Planted:
    """A pickle payload that would write a file when unpickled, if it were ever built."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "ran"))


def test_a_pickle_naming_other_classes_is_refused_without_running(tmp_path):
    from kl_rl.dapg import import_dapg

    target = tmp_path / "planted.txt"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps([{"observations": _Planted(target)}]))
    with pytest.raises(DemosError, match="refusing to load pathlib"):
        import_dapg(path)
    assert not target.exists()
    # Through the command line: one line on stderr, exit 2, nothing written.
    out = tmp_path / "out.npz"
    proc = subprocess.run([sys.executable, "-m", "kl_rl.cli", "demos", "import", str(path), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "refusing to load" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not target.exists() and not out.exists()


def test_import_wrong_dims_is_one_line(tmp_path):
    from kl_rl.dapg import import_dapg

    episode = _dapg_episode(20, 0, np.random.default_rng(1))
    episode["observations"] = episode["observations"][:, :30]
    path = tmp_path / "short.pickle"
    path.write_bytes(pickle.dumps([episode]))
    with pytest.raises(DemosError, match=r"expected \[T, 39\] and \[T, 28\]"):
        import_dapg(path)


@needs_dapg
def test_the_human_door_demonstrations_import():
    from kl_rl.dapg import import_dapg

    demos = import_dapg(DAPG)
    assert demos.num_episodes == 25 and demos.num_steps == 6729
    assert demos.observations.shape == (6729, 39) and demos.actions.shape == (6729, 28)
    assert sum(demos.metadata["successes"]) == 6  # the door open on more than 25 steps in 6 of 25


def test_every_door_env_reads_the_shipped_door_demonstrations():
    """door-zero-one and door-dense are the door task with other rewards: without --demos they
    train from data/demos/door.npz, as door does."""
    from kl_rl.prior_source import default_demos_path, load_demos

    assert default_demos_path("door-zero-one") == default_demos_path("door-dense") == default_demos_path("door")
    assert default_demos_path("door").name == "door.npz"
    data, path = load_demos("door-zero-one", 39, 28)
    assert path == default_demos_path("door") and data.observations.shape[-1] == 39
