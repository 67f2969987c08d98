"""Watching a policy: one deterministic episode of a run's policy replayed in 3-D, as a
self-contained HTML page (``kl-rl render RUN --out episode.html``) or an MP4 video.

Every kl_rl env is a MuJoCo model stepped by MJX, so one path serves them all (the locomotion
envs and the door): the episode's joint positions are recorded, MuJoCo's forward kinematics on
the CPU gives every visible geom's pose at every step, and the page draws the geoms (boxes,
spheres, capsules, cylinders, ellipsoids, meshes, the floor) with meshcat's three.js viewer,
inlined with the animation so the page needs no server, no network and no GPU. The video goes
through MuJoCo's offscreen renderer, which needs an OpenGL backend (EGL or OSMesa).
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np

from kl_rl.rollout import rollout


class RenderError(ValueError):
    """Nothing to render, or no way to render it here (one line)."""


@dataclasses.dataclass
class Episode:
    """One recorded episode: the MuJoCo model it ran in (with this episode's model parameters,
    e.g. the door frame's position), the joint positions at every step and its outcome."""

    model: Any  # mujoco.MjModel
    qpos: np.ndarray  # [T, nq], the state each action was taken in
    control_dt: float  # seconds between recorded steps
    episode_return: float
    success: bool | None
    env: str


def record_episode(cfg: Any, actor_params: Any, seed: int = 0, env_name: str | None = None,
                   stochastic: bool = False) -> Episode:
    """Runs one episode of the actor (deterministic unless ``stochastic``) on ``env_name``
    (default the run's env) in one env and records its joint positions until it ends."""
    from kl_rl.envs import make_env
    from kl_rl.sac import SAC

    env = make_env(env_name or cfg.env, 1, cfg.episode_length)
    if not (hasattr(env.env, "render_model") or hasattr(getattr(env.env, "sys", None), "mj_model")):
        raise RenderError(f"env {env.name} is not a MuJoCo model; render draws the MuJoCo envs (halfcheetah, hopper, "
                          "walker2d, ant, door)")
    sac = SAC(cfg, env.obs_size, env.action_size)
    metric = (env.success_metric,) if env.success_metric else ()

    def keep(physics: Any) -> dict[str, jax.Array]:  # the state each action is taken in
        return {"qpos": physics.pipeline_state.qpos, **{f"info:{k}": v for k, v in physics.info.items()}}

    run = jax.jit(lambda params, key: rollout(env, sac.policy(params, stochastic), key, metric, record=keep))
    episodes = jax.device_get(run(actor_params, jax.random.key(seed)))
    length = int(episodes.lengths[0])  # a terminated episode stops there
    info = {k.removeprefix("info:"): np.asarray(v)[0, 0] for k, v in episodes.metrics.items() if k.startswith("info:")}
    inner = env.env
    model = inner.render_model(info) if hasattr(inner, "render_model") else inner.sys.mj_model
    return Episode(model, np.asarray(episodes.metrics["qpos"][:length, 0]), float(inner.dt),
                   float(episodes.returns[0]), bool(episodes.successes(env)[0]) if metric else None, env.name)


VISIBLE_GROUPS = (0, 1, 2)  # MuJoCo's viewer shows geom groups 0-2 by default; higher ones hold collision proxies


def geom_poses(model: Any, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every geom's position [T, G, 3] and rotation matrix [T, G, 3, 3], and the first moving
    body's position [T, 3], at each recorded step (MuJoCo forward kinematics on the CPU)."""
    import mujoco

    data = mujoco.MjData(model)
    pos, rot, root = [], [], []
    for q in qpos:
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        pos.append(data.geom_xpos.copy())
        rot.append(data.geom_xmat.reshape(-1, 3, 3).copy())
        root.append(data.xpos[min(1, model.nbody - 1)].copy())
    return np.stack(pos), np.stack(rot), np.stack(root)


def _color(model: Any, g: int) -> tuple[int, float]:
    rgba = model.geom_rgba[g]
    if model.geom_matid[g] >= 0:
        rgba = model.mat_rgba[model.geom_matid[g]]
    rgb = np.clip(np.asarray(rgba[:3]) * 255, 0, 255).astype(int)
    return int(rgb[0]) << 16 | int(rgb[1]) << 8 | int(rgb[2]), float(rgba[3])


def _pose(rot: np.ndarray, pos: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot, pos
    return out


_Y_TO_Z = _pose(np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]), np.zeros(3))  # three.js cylinders lie along y


def scene_commands(episode: Episode, follow: bool = True) -> list[dict[str, Any]]:
    """meshcat viewer commands: one object per visible geom (capsules as a cylinder and two
    spheres), then an animation of every geom's pose at the env's control rate. ``follow``
    keeps the first moving body centred (the locomotion robots run tens of metres)."""
    import meshcat.geometry as mg
    from meshcat.animation import Animation
    from meshcat.commands import SetAnimation, SetObject, SetProperty, SetTransform
    from meshcat.path import Path as MeshcatPath

    m = episode.model
    pos, rot, centre = geom_poses(m, episode.qpos)  # [T, G, 3], [T, G, 3, 3], [T, 3]
    if follow and m.nbody > 1:
        moving = m.geom_type != 0  # planes (the floor) stay: a shifted floor would run out under the robot
        pos = pos.copy()
        pos[:, moving, :2] -= centre[:, None, :2]
    root = MeshcatPath(("episode",))
    commands: list[dict[str, Any]] = []
    shown = []
    for g in range(m.ngeom):
        color, alpha = _color(m, g)
        if alpha <= 0 or m.geom_group[g] not in VISIBLE_GROUPS:
            continue
        kind, size = int(m.geom_type[g]), m.geom_size[g]
        material = mg.MeshPhongMaterial(color=color, opacity=alpha)
        path = root.append(f"g{g}")
        parts: list[tuple[Any, np.ndarray]] = []
        if kind == 0:  # plane: a thin slab (size 0 means infinite: 20 m)
            half = [s if s > 0 else 10.0 for s in size[:2]]
            parts = [(mg.Box([2 * half[0], 2 * half[1], 0.002]), np.eye(4))]
        elif kind == 2:
            parts = [(mg.Sphere(size[0]), np.eye(4))]
        elif kind == 3:  # capsule along z: a cylinder and two end spheres
            parts = [(mg.Cylinder(2 * size[1], size[0]), _Y_TO_Z),
                     (mg.Sphere(size[0]), _pose(np.eye(3), [0, 0, size[1]])),
                     (mg.Sphere(size[0]), _pose(np.eye(3), [0, 0, -size[1]]))]
        elif kind == 4:
            parts = [(mg.Ellipsoid(size[:3]), np.eye(4))]
        elif kind == 5:
            parts = [(mg.Cylinder(2 * size[1], size[0]), _Y_TO_Z)]
        elif kind == 6:
            parts = [(mg.Box(2 * size[:3]), np.eye(4))]
        elif kind == 7:
            mesh = m.geom_dataid[g]
            v0, nv = m.mesh_vertadr[mesh], m.mesh_vertnum[mesh]
            f0, nf = m.mesh_faceadr[mesh], m.mesh_facenum[mesh]
            parts = [(mg.TriangularMeshGeometry(m.mesh_vert[v0:v0 + nv], m.mesh_face[f0:f0 + nf]), np.eye(4))]
        for i, (geometry, local) in enumerate(parts):
            part = path.append(f"p{i}")
            commands.append(SetObject(geometry, material, part).lower())
            commands.append(SetTransform(local, part).lower())
        if parts:
            shown.append(g)
    if not shown:
        raise RenderError(f"the {episode.env} model has no visible geoms to draw")
    animation = Animation(default_framerate=max(1, round(1.0 / episode.control_dt)))
    frame_path = type("P", (), {"path": root})()  # Animation.at_frame reads only .path
    for t in range(pos.shape[0]):
        with animation.at_frame(frame_path, t) as frame:
            for g in shown:
                frame[f"g{g}"].set_transform(_pose(rot[t, g], pos[t, g]))
    for g in shown:  # the first pose, for viewers that start paused
        commands.append(SetTransform(_pose(rot[0, g], pos[0, g]), root.append(f"g{g}")).lower())
    commands.append(SetAnimation(animation, play=True, repetitions=1000).lower())
    # the camera: beside the drawn bodies (the floor aside), a little above, 2.5 times their radius away
    bodies = [g for g in shown if m.geom_type[g] != 0] or shown
    first = pos[0, bodies]  # [B, 3]
    centre = first.mean(axis=0)
    radius = float(np.max(np.linalg.norm(first - centre, axis=1) + m.geom_rbound[bodies]))
    distance = 2.5 * max(radius, 0.2)
    eye = centre + np.array([0.5 * distance, -distance, 0.45 * distance])  # world frame, z up
    camera = MeshcatPath(("Cameras", "default", "rotated", "<object>"))
    commands.append(SetProperty("position", [float(eye[0]), float(eye[2]), float(-eye[1])], camera).lower())
    return commands


def html_page(commands: list[dict[str, Any]], title: str) -> str:
    """A self-contained page: meshcat's viewer (three.js) inlined, then the commands as
    msgpack, decoded in the page. Opens from a file with no server and no network."""
    import html
    from importlib import resources

    import umsgpack

    viewer_js = (resources.files("meshcat") / "viewer" / "dist" / "main.min.js").read_text(encoding="utf-8")
    blobs = ",\n".join(f'"{base64.b64encode(umsgpack.packb(c)).decode()}"' for c in commands)
    return f"""<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body {{ margin: 0; }} #meshcat-pane {{ width: 100vw; height: 100vh; overflow: hidden; }}</style></head>
<body>
<div id="meshcat-pane"></div>
<script>{viewer_js}</script>
<script>
var viewer = new MeshCat.Viewer(document.getElementById("meshcat-pane"));
var commands = [{blobs}];
for (var i = 0; i < commands.length; i++) {{
  var raw = atob(commands[i]);
  var bytes = new Uint8Array(raw.length);
  for (var j = 0; j < raw.length; j++) bytes[j] = raw.charCodeAt(j);
  viewer.handle_command_bytearray(bytes);
}}
</script>
</body>
</html>
"""


def write_html(episode: Episode, path: Path, title: str, follow: bool = True) -> Path:
    from kl_rl.run_folder import write_text_atomic

    write_text_atomic(Path(path), html_page(scene_commands(episode, follow), title))
    return Path(path)


def write_video(episode: Episode, path: Path, width: int = 640, height: int = 480, camera: int | str = -1) -> Path:
    """An MP4 of the episode through MuJoCo's offscreen renderer (MUJOCO_GL=egl or osmesa; the
    free camera, or ``camera`` by name or id), written with imageio's ffmpeg."""
    try:
        import mujoco

        renderer = mujoco.Renderer(episode.model, height=height, width=width)
    except Exception as err:  # noqa: BLE001 - no OpenGL context: GLFW, EGL and OSMesa fail differently
        raise RenderError(f"MuJoCo cannot open an OpenGL context here ({err.__class__.__name__}: {err}); install "
                          "EGL (libegl1) or OSMesa (libosmesa6) and set MUJOCO_GL=egl or osmesa, or write --out "
                          "episode.html") from None
    import imageio.v3 as iio

    data = mujoco.MjData(episode.model)
    frames = []
    for q in episode.qpos:
        data.qpos[:] = q
        mujoco.mj_forward(episode.model, data)
        renderer.update_scene(data, camera=camera)
        frames.append(renderer.render().copy())
    renderer.close()
    iio.imwrite(path, np.stack(frames), fps=max(1, round(1.0 / episode.control_dt)), codec="libx264")
    return Path(path)
