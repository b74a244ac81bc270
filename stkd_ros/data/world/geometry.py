"""
Scene geometry as flat arrays of planar quads, built from boxes and panels.

World frame: x to the right of the road, y down (the ground is y = 0), z along the road.
Every surface is a planar quad so that the inverse depth of each pixel is an affine function of
its normalized image coordinates, which makes depth, labels and flow exact and cheap.
"""

from dataclasses import dataclass

import numpy as np
from stkd_ros.errors import InputError

#: Drawing layers, back to front: the ground never occludes what stands on it, markings lie on
#: the ground, buildings stand behind everything that is between them and the road.
LAYER_GROUND, LAYER_MARKING, LAYER_BUILDING, LAYER_OBJECT = 0, 1, 2, 3


@dataclass(frozen=True)
class Material:
    """Surface appearance: base colour (0..1 RGB), texture tile, tiles per metre, contrast."""

    rgb: tuple
    tile: int
    scale: float
    amp: float


@dataclass
class Quads:
    """All quads of a scene, in the local frame of the object each belongs to (0 = static)."""

    vertices: np.ndarray   # (Q, 4, 3) float64
    normals: np.ndarray    # (Q, 3) unit outward normals
    obj: np.ndarray        # (Q,) int, index into the scene's object trajectories
    cls: np.ndarray        # (Q,) uint8 class id (255 = void)
    material: np.ndarray   # (Q, 6) float32: r, g, b, tile, scale, amp
    layer: np.ndarray      # (Q,) int drawing layer
    group: np.ndarray      # (Q,) int, quads drawn together (one box) share a group
    two_sided: np.ndarray  # (Q,) bool, panels seen from both sides

    def __len__(self):
        return len(self.obj)


class QuadBuilder:
    """Collects boxes and panels, then packs them into :class:`Quads`."""

    def __init__(self):
        self._rows = []
        self._groups = 0

    def panel(self, corners, *, cls, material, obj=0, layer=LAYER_OBJECT, two_sided=True,
              group=None):
        """Add one planar quad given by its 4 corners (in order around the edge)."""
        corners = np.asarray(corners, dtype=np.float64)
        # Corners run clockwise seen from outside, so this cross product points outward.
        normal = np.cross(corners[3] - corners[0], corners[1] - corners[0])
        normal /= np.linalg.norm(normal)
        if group is None:
            group = self._new_group()
        self._rows.append((corners, normal, obj, cls, material, layer, group, two_sided))

    def box(self, x0, x1, z0, z1, height, *, cls, material, obj=0, layer=LAYER_OBJECT,
            bottom=0.0, top_face=True):
        """
        Add an axis-aligned box from height ``bottom`` up to ``bottom + height``.

        Only outward faces are kept; back faces are culled at render time.
        """
        group = self._new_group()
        y0, y1 = -bottom, -(bottom + height)
        faces = [
            [(x0, y0, z0), (x0, y1, z0), (x1, y1, z0), (x1, y0, z0)],  # -z face
            [(x1, y0, z1), (x1, y1, z1), (x0, y1, z1), (x0, y0, z1)],  # +z face
            [(x0, y0, z1), (x0, y1, z1), (x0, y1, z0), (x0, y0, z0)],  # -x face
            [(x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)],  # +x face
        ]
        if top_face:
            faces.append([(x0, y1, z0), (x0, y1, z1), (x1, y1, z1), (x1, y1, z0)])
        for corners in faces:
            self.panel(corners, cls=cls, material=material, obj=obj, layer=layer,
                       two_sided=False, group=group)
        return self

    def ground(self, x0, x1, z0, z1, *, cls, material, layer=LAYER_GROUND, lift=0.0):
        """Add a horizontal quad, raised by ``lift`` metres for paint on the road."""
        y = -lift
        self.panel([(x0, y, z0), (x0, y, z1), (x1, y, z1), (x1, y, z0)], cls=cls,
                   material=material, layer=layer, two_sided=True)

    def build(self) -> Quads:
        if not self._rows:
            raise InputError('a scene needs at least one quad')
        cols = list(zip(*self._rows))
        materials = np.array([(*m.rgb, m.tile, m.scale, m.amp) for m in cols[4]],
                             dtype=np.float32)
        return Quads(
            vertices=np.stack(cols[0]), normals=np.stack(cols[1]),
            obj=np.array(cols[2], dtype=np.int64), cls=np.array(cols[3], dtype=np.uint8),
            material=materials, layer=np.array(cols[5], dtype=np.int64),
            group=np.array(cols[6], dtype=np.int64), two_sided=np.array(cols[7], dtype=bool))

    def _new_group(self):
        self._groups += 1
        return self._groups


def rotation_yaw_pitch(yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world rotation: yaw about the world's down axis, then pitch about camera x."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return r_yaw @ r_pitch


def clip_near(points: np.ndarray, near: float) -> np.ndarray:
    """Clip a convex polygon (N, 3) in camera coordinates against the plane z = near."""
    out = []
    n = len(points)
    for i in range(n):
        a, b = points[i], points[(i + 1) % n]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out) if out else np.zeros((0, 3))
