"""``kl-rl render``: the self-contained 3-D page of an episode (checked in headless Chromium
where it is installed: no console errors, the robot drawn) and the MuJoCo video (where EGL is)."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (.ci/run installs Debian's chromium)")


def _door_episode(frames: int = 12):
    from kl_rl.envs.door import Door
    from kl_rl.render import Episode

    env = Door()
    model = env.render_model({"door_pos": np.array([-0.25, 0.3, 0.3])})
    qpos = np.tile(np.asarray(model.qpos0), (frames, 1))  # [T, nq]
    qpos[:, env._hinge] = np.linspace(0.0, 1.5, frames)  # the door swings open
    return env, Episode(model, qpos, env.dt, 0.0, None, "door")


def test_door_scene_draws_every_visible_geom_and_animates_them():
    from kl_rl.render import VISIBLE_GROUPS, scene_commands

    env, episode = _door_episode()
    m = episode.model
    assert m.body_pos[env._frame].tolist() == [-0.25, 0.3, 0.3]  # this episode's door position
    commands = scene_commands(episode, follow=False)
    visible = [g for g in range(m.ngeom) if m.geom_rgba[g][3] > 0 and m.geom_group[g] in VISIBLE_GROUPS]
    parts = sum(3 if m.geom_type[g] == 3 else 1 for g in visible)  # capsules: a cylinder and two spheres
    assert sum(c["type"] == "set_object" for c in commands) == parts
    (animation,) = [c for c in commands if c["type"] == "set_animation"]
    tracks = {a["path"]: a["clip"]["tracks"] for a in animation["animations"]}
    assert len(tracks) == len(visible)
    hinge_geoms = [g for g in visible if m.geom_bodyid[g] == m.joint("door_hinge").bodyid[0]]
    quats = [k["value"] for t in tracks[f"/episode/g{hinge_geoms[0]}"] if t["name"] == ".quaternion" for k in t["keys"]]
    assert len(quats) == 12 and not np.allclose(quats[0], quats[-1])  # the door turns


@pytest.fixture(scope="module")
def expert_page(tmp_path_factory) -> Path:
    """The shipped halfcheetah expert's episode, through the CLI."""
    out = tmp_path_factory.mktemp("render") / "episode.html"
    proc = subprocess.run([sys.executable, "-m", "kl_rl.cli", "render", str(ROOT / "data" / "experts" / "halfcheetah"),
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "halfcheetah · sac · final policy" in proc.stdout and "1000 steps" in proc.stdout
    return out


def test_page_is_self_contained(expert_page):
    page = expert_page.read_text()
    assert "new MeshCat.Viewer" in page and page.count("<script>") == 2  # the viewer and the scene, inlined
    assert "<script src" not in page and "<link" not in page  # nothing fetched


def _chromium(page: Path, shot: Path) -> str:
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                           "--enable-unsafe-swiftshader", "--enable-logging=stderr", "--v=0", "--window-size=640,480",
                           "--virtual-time-budget=6000", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=300)
    assert shot.exists(), proc.stderr[-3000:]
    return proc.stderr


def _errors(log: str) -> list[str]:
    """The page's JavaScript errors in Chromium's log (uncaught exceptions, failed loads)."""
    return [line for line in log.splitlines() if ":CONSOLE" in line and ("Uncaught" in line or "Failed to" in line)]


@needs_chromium
def test_page_loads_in_headless_chromium_and_draws_the_robot(expert_page, tmp_path):
    import matplotlib.image as mpimg

    from kl_rl.render import html_page

    log = _chromium(expert_page, tmp_path / "episode.png")
    assert not _errors(log), _errors(log)
    # the same viewer with nothing in it: the difference is the robot (and its shadow)
    (tmp_path / "empty.html").write_text(html_page([], "empty"))
    _chromium(tmp_path / "empty.html", tmp_path / "empty.png")
    full, empty = mpimg.imread(tmp_path / "episode.png"), mpimg.imread(tmp_path / "empty.png")
    changed = np.abs(full[..., :3] - empty[..., :3]).max(axis=-1) > 0.1  # [H, W]
    assert changed.mean() > 0.005, changed.mean()
    # the check itself can fail: a page that throws is caught
    broken = html_page([], "broken").replace("var viewer", "throw new Error('boom'); var viewer")
    (tmp_path / "broken.html").write_text(broken)
    assert _errors(_chromium(tmp_path / "broken.html", tmp_path / "broken.png"))


@pytest.mark.skipif(ctypes.util.find_library("EGL") is None, reason="no EGL library for MuJoCo's offscreen renderer")
def test_video_through_mujocos_offscreen_renderer(tmp_path):
    here, out = str(Path(__file__).parent), str(tmp_path / "door.mp4")
    script = (f"import sys; sys.path.insert(0, {here!r}); from test_render import _door_episode; "
              f"from kl_rl.render import write_video; write_video(_door_episode(6)[1], {out!r}, width=160, height=128)")
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "MUJOCO_GL": "egl"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import imageio.v3 as iio

    frames = iio.imread(tmp_path / "door.mp4")
    assert frames.shape == (6, 128, 160, 3) and frames.std() > 5  # six frames with something in them


@pytest.mark.parametrize("args, expected", [
    (["data/experts/halfcheetah", "--out", "x.gif"], "write an .html page or an .mp4 video"),
    (["nowhere"], "no run folder at nowhere"),
    (["data/experts/halfcheetah", "--env", "door"], "is another task than the run's env halfcheetah"),
])
def test_render_bad_input(args, expected):
    proc = subprocess.run([sys.executable, "-m", "kl_rl.cli", "render", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
