"""
Rasterize a scene into an albedo image, exact labels, and the state that exact flow needs.

Quads are drawn back to front into an index map (painter's algorithm, one ``fillConvexPoly``
per visible quad). Each pixel then knows its quad, hence its plane: inverse depth is
``rho = q . (xn, yn, 1)`` with ``q = n / d`` for the plane ``n . P = d`` in camera coordinates.
That gives the 3-D point, the texture coordinates, and the exact motion to any other frame.
"""

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
from stkd_ros.data.world.geometry import clip_near
from stkd_ros.data.world.scene import Scene, SKY
from stkd_ros.data.world.textures import SMOOTH, texture_tiles, TILE

NEAR, FAR = 0.2, 300.0
_SHIFT = 4  # sub-pixel bits for cv2 rasterization


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics; pixel centres sit on integer coordinates (OpenCV convention)."""

    height: int
    width: int
    hfov_deg: float = 72.0

    @property
    def focal(self) -> float:
        return float(0.5 * self.width / np.tan(np.radians(self.hfov_deg) / 2))

    @property
    def center(self):
        return (self.width - 1) / 2.0, (self.height - 1) / 2.0

    @cached_property
    def rays3(self):
        """Return the homogeneous rays (xn, yn, 1) of every pixel, HxWx3 float32."""
        xn, yn = self.rays
        return np.dstack([xn, yn, np.ones_like(xn)])

    @cached_property
    def rays(self):
        """Return the normalized image coordinates (xn, yn) of every pixel, HxW float32."""
        cx, cy = self.center
        xn = (np.arange(self.width, dtype=np.float32) - cx) / self.focal
        yn = (np.arange(self.height, dtype=np.float32) - cy) / self.focal
        shape = (self.height, self.width)
        return (np.ascontiguousarray(np.broadcast_to(xn, shape)),
                np.ascontiguousarray(np.broadcast_to(yn[:, None], shape)))


@dataclass
class Render:
    """One rendered frame before the sensor: linear albedo, labels, and per-pixel geometry."""

    albedo: np.ndarray   # HxWx3 float32, 0..1 before exposure
    label: np.ndarray    # HxW uint8
    rho: np.ndarray      # HxW float32 inverse depth (0 for sky)
    obj: np.ndarray      # HxW int64 object index of the surface seen


def _visible_quads(scene: Scene, t: int):
    """Return camera-frame vertices, and the indices of quads that may be visible, far first."""
    quads = scene.quads
    rot, pos = scene.cam_rot[t], scene.cam_pos[t]
    world = quads.vertices + scene.obj_pos(t)[quads.obj][:, None, :]
    cam = (world - pos) @ rot
    centre_w = world.mean(axis=1)
    facing = np.einsum('qi,qi->q', quads.normals, pos - centre_w) > 0
    z = cam[..., 2]
    keep = (facing | quads.two_sided) & (z.max(axis=1) > NEAR) & (z.min(axis=1) < FAR)
    keep &= (cam[..., 0] < cam[..., 2] * 2.0).any(1) & (cam[..., 0] > -cam[..., 2] * 2.0).any(1)
    idx = np.flatnonzero(keep)
    # Painter's order: by layer, then by the mean distance of the quad's group, far first.
    dist = np.linalg.norm(cam[idx].mean(axis=1), axis=1)
    groups, inverse = np.unique(quads.group[idx], return_inverse=True)
    group_dist = np.bincount(inverse, weights=dist) / np.bincount(inverse)
    order = np.lexsort((-group_dist[inverse], quads.layer[idx]))
    return cam, idx[order]


def _plane_table(scene: Scene, t: int, cam: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per visible quad: q (3), tile, scale, amp, axis, object position (3), shaded rgb (3)."""
    quads = scene.quads
    normals_c = quads.normals[idx] @ scene.cam_rot[t]
    d = np.einsum('qi,qi->q', normals_c, cam[idx, 0])
    d = np.where(np.abs(d) < 1e-9, 1e-9, d)
    q = normals_c / d[:, None]
    lambert = -quads.normals[idx] @ scene.sun
    lambert = np.where(quads.two_sided[idx], np.abs(lambert), np.maximum(lambert, 0.0))
    shade = scene.ambient + (1 - scene.ambient) * lambert
    # Texture axes: (x, z) on horizontal faces, (z, y) facing x, (x, y) facing z.
    axis = np.array([1, 0, 2])[np.abs(quads.normals[idx]).argmax(axis=1)]
    origin = scene.obj_pos(t)[quads.obj[idx]]
    material = quads.material[idx]
    table = np.concatenate([q, material[:, 3:6], axis[:, None], origin,
                            material[:, :3] * shade[:, None] * scene.tint], axis=1)
    sky = np.zeros((1, table.shape[1]))
    return np.concatenate([sky, table]).astype(np.float32)


def _rasterize(camera: Camera, cam: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Draw quads ``idx`` in order into an index map; pixel value k means quad ``idx[k-1]``."""
    index = np.zeros((camera.height, camera.width), np.int32)
    f, (cx, cy) = camera.focal, camera.center
    scale = float(1 << _SHIFT)
    poly = cam[idx]
    z = np.maximum(poly[..., 2], NEAR)
    u = (f * poly[..., 0] / z + cx) * scale
    v = (f * poly[..., 1] / z + cy) * scale
    pts = np.clip(np.stack([u, v], axis=-1), -2e8, 2e8).round().astype(np.int32)
    # Quads wholly outside the image are skipped; quads crossing the near plane are clipped.
    limit = np.array([camera.width, camera.height]) * scale
    inside = ((pts.max(axis=1) >= 0) & (pts.min(axis=1) < limit)).all(axis=1)
    crossing = poly[..., 2].min(axis=1) < NEAR
    for row in np.flatnonzero(inside | crossing):
        quad = pts[row]
        if crossing[row]:
            near = clip_near(poly[row], NEAR)
            if len(near) < 3:
                continue
            quad = np.stack([(f * near[:, 0] / near[:, 2] + cx) * scale,
                             (f * near[:, 1] / near[:, 2] + cy) * scale], axis=1)
            quad = np.clip(quad, -2e8, 2e8).round().astype(np.int32)
        cv2.fillConvexPoly(index, quad, int(row) + 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return index


def _sky(scene: Scene, t: int, camera: Camera, rows: int) -> np.ndarray:
    """
    Sky colour (rows x W x 3): a gradient with clouds, fixed to directions in the world.

    It varies slowly across the image, so it is computed at a quarter of the resolution.
    """
    xn, yn = (r[:rows:4, ::4] for r in camera.rays)
    rot = scene.cam_rot[t].astype(np.float32)
    dx, dy, dz = (rot[i, 0] * xn + rot[i, 1] * yn + rot[i, 2] for i in range(3))
    inv = 1.0 / np.sqrt(dx * dx + dy * dy + dz * dz)
    elevation = np.clip(-3.0 * dy * inv, 0.0, 1.0)
    tu = (dx * inv * (3.0 * TILE)).astype(np.int32) % TILE
    tv = (dy * inv * (6.0 * TILE)).astype(np.int32) % TILE
    clouds = 1.0 + 0.12 * np.take(texture_tiles(), SMOOTH * TILE * TILE + tv * TILE + tu)
    horizon, zenith = (scene.sky_colors * scene.tint).astype(np.float32)
    small = np.stack([(h + (z - h) * elevation) * clouds for h, z in zip(horizon, zenith)],
                     axis=-1)
    return cv2.resize(small, (camera.width, rows), interpolation=cv2.INTER_LINEAR)


def render(scene: Scene, t: int, camera: Camera) -> Render:
    """Render frame ``t`` of ``scene`` (before lighting changes and sensor effects)."""
    cam, idx = _visible_quads(scene, t)
    table = _plane_table(scene, t, cam, idx)
    index = _rasterize(camera, cam, idx).astype(np.intp)
    labels = np.take(np.concatenate([[SKY], scene.quads.cls[idx]]).astype(np.uint8), index)

    px = np.take(table, index, axis=0)   # one gather of every per-quad attribute
    q0, q1, q2, tile, tiles_per_m, amp, axis, ox, oy, oz = np.moveaxis(px[..., :10], -1, 0)
    color = np.take(np.ascontiguousarray(table[:, 10:13]), index, axis=0)
    xn, yn = camera.rays
    rho = q0 * xn + q1 * yn + q2
    rho_safe = np.maximum(rho, 1e-4)
    rot = scene.cam_rot[t].astype(np.float32)
    pos = scene.cam_pos[t].astype(np.float32)
    local = [(rot[i, 0] * xn + rot[i, 1] * yn + rot[i, 2]) / rho_safe + (pos[i] - o)
             for i, o in enumerate((ox, oy, oz))]
    tu = np.where(axis == 1, local[2], local[0])
    tv = np.where(axis == 0, local[2], local[1])
    scale = np.maximum(tiles_per_m, 1e-3) * TILE
    texel = tile.astype(np.int32) * (TILE * TILE)
    texel += (np.floor(tv * scale).astype(np.int32) % TILE) * TILE
    texel += np.floor(tu * scale).astype(np.int32) % TILE
    # Fade texture contrast where a pixel covers many texels, as a mip-map would.
    detail = np.minimum(1.5 * camera.focal * rho_safe / scale, 1.0)
    brightness = 1.0 + amp * detail * np.take(texture_tiles(), texel)
    albedo = color * brightness[..., None]

    sky = index == 0
    sky_rows = np.flatnonzero(sky.any(axis=1))
    if len(sky_rows):
        rows = sky_rows[-1] + 1
        # Sky rows of the table are black with no texture, so adding the sky fills them.
        albedo[:rows] += _sky(scene, t, camera, rows) * sky[:rows, :, None]
    obj = np.take(np.concatenate([[0], scene.quads.obj[idx]]), index)
    return Render(albedo=albedo, label=labels, rho=np.maximum(rho, 0.0),
                  obj=obj)


def exact_flow(scene: Scene, frame: Render, t: int, s: int, camera: Camera) -> np.ndarray:
    """
    Exact optical flow (HxWx2, pixels) taking each pixel of frame ``t`` to frame ``s``.

    The pixel's 3-D point ``r / rho`` moves with its object; in homogeneous form the new
    position is ``A r + rho b`` with ``A = R_s^T R_t`` and ``b = R_s^T (C_t - C_s + motion)``,
    which also holds for the sky (rho = 0: rotation only).
    """
    rot_t, rot_s = scene.cam_rot[t], scene.cam_rot[s]
    a = (rot_s.T @ rot_t).astype(np.float32)
    motion = scene.obj_pos(s) - scene.obj_pos(t)
    b = ((scene.cam_pos[t] - scene.cam_pos[s] + motion) @ rot_s).astype(np.float32)
    moved = cv2.transform(camera.rays3, a) + np.take(b, frame.obj, axis=0) * frame.rho[..., None]
    x, y, z = cv2.split(moved)
    z = np.maximum(z, 1e-3)
    xn, yn = camera.rays
    f = camera.focal
    flow = np.empty(xn.shape + (2,), np.float32)
    flow[..., 0] = f * (x / z - xn)
    flow[..., 1] = f * (y / z - yn)
    return flow
