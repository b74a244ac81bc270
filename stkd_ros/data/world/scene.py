"""Lay out one clip's road scene: static street, moving traffic, ego trajectory and lighting."""

from dataclasses import dataclass

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.data.world import textures as tx
from stkd_ros.data.world.geometry import (
    LAYER_BUILDING, LAYER_MARKING, Material, QuadBuilder, Quads, rotation_yaw_pitch)

SKY, BUILDING, POLE, ROAD, SIDEWALK, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(11)


@dataclass
class Scene:
    """Everything needed to render any frame of one clip."""

    quads: Quads
    obj_start: np.ndarray   # (O, 3) object origin at frame 0 (object 0 is the static world)
    obj_step: np.ndarray    # (O, 3) displacement per frame
    cam_pos: np.ndarray     # (T, 3) camera centre per frame
    cam_rot: np.ndarray     # (T, 3, 3) camera-to-world rotation per frame
    sun: np.ndarray         # (3,) unit direction the light travels
    ambient: float
    exposure: np.ndarray    # (T,) global gain per frame
    tint: np.ndarray        # (3,) white balance
    sky_colors: np.ndarray  # (2, 3) horizon and zenith colour

    def obj_pos(self, t: float) -> np.ndarray:
        return self.obj_start + self.obj_step * t


def _jitter(rng, rgb, amount):
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0.02, 1.0)) for c in rgb)


def _mix(rgb, target, weight):
    return tuple((1 - weight) * a + weight * b for a, b in zip(rgb, target))


class _Street:
    """Random street furniture along both sides of a straight road."""

    def __init__(self, rng, difficulty, z_range):
        self.rng, self.d = rng, difficulty
        self.z0, self.z1 = z_range
        self.road_half = rng.uniform(5.5, 7.5)
        self.sidewalk = rng.uniform(2.5, 4.0)
        self.b = QuadBuilder()
        # Confusable pairs share colour more as difficulty rises: context must decide.
        grey = (0.42, 0.41, 0.42)
        self.road = Material(_mix((0.30, 0.30, 0.33), grey, 0.4 * difficulty), tx.GRAIN, 2.0, 0.35)
        self.walk = Material(_mix((0.55, 0.50, 0.46), grey, 0.6 * difficulty), tx.SLABS, 0.5, 0.3)

    def ground(self):
        rh = self.road_half
        for z in np.arange(self.z0, self.z1, 15.0):
            self.b.ground(-rh, rh, z, z + 15.0, cls=ROAD, material=self.road)
            for s in (-1, 1):
                xs = sorted((s * rh, s * 60.0))
                self.b.ground(*xs, z, z + 15.0, cls=SIDEWALK, material=self.walk)
        self._markings()

    def _markings(self):
        rh = self.road_half
        paint = Material((0.85, 0.85, 0.8), tx.SMOOTH, 0.5, 0.1)
        for x in (-rh / 2, 0.0, rh / 2):
            z = self.z0 + self.rng.uniform(0, 9)
            while z < self.z1:
                self.b.ground(x - 0.08, x + 0.08, z, z + 3.0, cls=ROAD, material=paint,
                              layer=LAYER_MARKING)
                z += 9.0
        for s in (-1, 1):
            x = s * (rh - 0.25)
            self.b.ground(x - 0.1, x + 0.1, self.z0, self.z1, cls=ROAD, material=paint,
                          layer=LAYER_MARKING)

    def buildings(self):
        rng = self.rng
        for s in (-1, 1):
            z = self.z0
            while z < self.z1:
                length = rng.uniform(8, 30)
                x_front = self.road_half + self.sidewalk + rng.uniform(0.0, 4.0)
                tint = _jitter(rng, (0.55, 0.45, 0.40), 0.15)
                wall = Material(tint, tx.WINDOWS, rng.uniform(0.25, 0.4), rng.uniform(0.3, 0.6))
                xs = sorted((s * x_front, s * (x_front + 12.0)))
                self.b.box(*xs, z, z + length, rng.uniform(5, 25), cls=BUILDING, material=wall,
                           layer=LAYER_BUILDING, top_face=False)
                if rng.random() < 0.5:
                    self._fence(s, z + length, rng.uniform(3, 10), tint)
                z += length + (rng.uniform(2, 10) if rng.random() < 0.6 else 0.0)

    def _fence(self, side, z, length, tint):
        x = side * (self.road_half + self.sidewalk - 0.2)
        h = self.rng.uniform(1.0, 1.8)
        material = Material(_mix(tint, (0.5, 0.5, 0.5), 0.3), tx.GRID, 0.6, 0.5)
        self.b.panel([(x, 0, z), (x, -h, z), (x, -h, z + length), (x, 0, z + length)],
                     cls=FENCE, material=material)

    def poles_signs_trees(self):
        rng, rh, sw = self.rng, self.road_half, self.sidewalk
        metal = Material((0.5, 0.5, 0.52), tx.SMOOTH, 0.5, 0.2)
        for s in (-1, 1):
            z = self.z0 + rng.uniform(0, 10)
            while z < self.z1:
                x = s * (rh + 0.4)
                w = rng.uniform(0.12, 0.25) / 2
                height = rng.uniform(5, 9)
                self.b.box(x - w, x + w, z - w, z + w, height, cls=POLE, material=metal)
                if rng.random() < 0.5:
                    self._sign(x, z - w - 0.02, rng.uniform(2.0, 3.2))
                if rng.random() < 0.25:
                    lamp = Material((0.15, 0.15, 0.15), tx.SMOOTH, 1.0, 0.1)
                    self.b.box(x - 0.2, x + 0.2, z - 0.2, z + 0.2, 0.9, bottom=height - 1.0,
                               cls=SIGN, material=lamp)
                z += rng.uniform(12, 30)
            z = self.z0 + rng.uniform(0, 10)
            while z < self.z1:
                if rng.random() < 0.7:
                    self._tree(s * (rh + sw * rng.uniform(0.45, 0.8)), z)
                else:
                    self._clutter(s * (rh + sw * rng.uniform(0.3, 0.9)), z)
                z += rng.uniform(6, 18)

    def _sign(self, x, z, bottom):
        rng = self.rng
        size = rng.uniform(0.5, 0.9)
        face = [(0.9, 0.9, 0.9), (0.1, 0.25, 0.7), (0.8, 0.1, 0.1), (0.95, 0.8, 0.1)]
        material = Material(face[rng.integers(len(face))], tx.SMOOTH, 1.0, 0.15)
        top = bottom + size
        self.b.panel([(x - size / 2, -bottom, z), (x - size / 2, -top, z),
                      (x + size / 2, -top, z), (x + size / 2, -bottom, z)],
                     cls=SIGN, material=material)

    def _tree(self, x, z):
        rng = self.rng
        bark = Material((0.32, 0.24, 0.16), tx.GRAIN, 3.0, 0.3)
        trunk = rng.uniform(1.8, 3.0)
        self.b.box(x - 0.15, x + 0.15, z - 0.15, z + 0.15, trunk, cls=TREE, material=bark)
        leaves = Material(_jitter(rng, (0.2, 0.4, 0.15), 0.08), tx.FOLIAGE,
                          rng.uniform(0.5, 1.0), 0.6)
        r = rng.uniform(1.0, 2.2)
        self.b.box(x - r, x + r, z - r, z + r, rng.uniform(2, 4), bottom=trunk, cls=TREE,
                   material=leaves)

    def _clutter(self, x, z):
        bin_ = Material(_jitter(self.rng, (0.3, 0.35, 0.3), 0.1), tx.SMOOTH, 1.0, 0.2)
        self.b.box(x - 0.3, x + 0.3, z - 0.3, z + 0.3, self.rng.uniform(0.8, 1.2),
                   cls=IGNORE_INDEX, material=bin_)


class _Traffic:
    """Moving cars, bicyclists and pedestrians, plus parked cars; one object per mover."""

    def __init__(self, street, ego_speed, frames):
        self.s, self.b, self.rng = street, street.b, street.rng
        self.ego_speed, self.frames = ego_speed, frames
        self.start, self.step = [np.zeros(3)], [np.zeros(3)]

    def _object(self, origin, velocity):
        self.start.append(np.asarray(origin, dtype=np.float64))
        self.step.append(np.asarray(velocity, dtype=np.float64))
        return len(self.start) - 1

    def _car(self, x, z, velocity, parked=False):
        rng = self.rng
        paint = Material(tuple(rng.uniform(0.05, 0.9, 3)), tx.SMOOTH, 0.5, 0.15)
        glass = Material((0.08, 0.1, 0.12), tx.SMOOTH, 0.5, 0.2)
        length, width = rng.uniform(3.9, 4.9), rng.uniform(1.7, 1.95)
        obj = 0 if parked else self._object((x, 0.0, z), (0.0, 0.0, velocity))
        ox, oz = (x, z) if parked else (0.0, 0.0)
        hl, hw = length / 2, width / 2
        self.b.box(ox - hw, ox + hw, oz - hl, oz + hl, 0.75, bottom=0.3, cls=CAR,
                   material=paint, obj=obj)
        self.b.box(ox - hw + 0.1, ox + hw - 0.1, oz - hl * 0.55, oz + hl * 0.45,
                   rng.uniform(0.45, 0.6), bottom=1.05, cls=CAR, material=glass, obj=obj)
        tyre = Material((0.05, 0.05, 0.05), tx.SMOOTH, 1.0, 0.1)
        self.b.box(ox - hw + 0.05, ox + hw - 0.05, oz - hl + 0.4, oz + hl - 0.4, 0.3, cls=CAR,
                   material=tyre, obj=obj, top_face=False)

    def _person(self, x, z, vx, vz, cls=PEDESTRIAN, bottom=0.0):
        rng = self.rng
        obj = self._object((x, 0.0, z), (vx, 0.0, vz))
        cloth = Material(tuple(rng.uniform(0.05, 0.8, 3)), tx.STRIPES, rng.uniform(1, 3), 0.3)
        trousers = Material(tuple(rng.uniform(0.05, 0.4, 3)), tx.GRAIN, 3.0, 0.2)
        skin = Material(_jitter(rng, (0.75, 0.55, 0.45), 0.15), tx.SMOOTH, 1.0, 0.05)
        self.b.box(-0.17, 0.17, -0.12, 0.12, 0.85, bottom=bottom, cls=cls, material=trousers,
                   obj=obj)
        self.b.box(-0.23, 0.23, -0.14, 0.14, 0.65, bottom=bottom + 0.85, cls=cls,
                   material=cloth, obj=obj)
        self.b.box(-0.11, 0.11, -0.11, 0.11, 0.23, bottom=bottom + 1.5, cls=cls, material=skin,
                   obj=obj)
        return obj

    def populate(self, difficulty):
        rng, rh = self.rng, self.s.road_half
        crowd = 0.5 + difficulty
        for _ in range(int(round(rng.uniform(2, 6) * crowd))):
            lane = rng.choice([-0.75, -0.25, 0.25, 0.75])
            if lane > 0:
                speed = self.ego_speed * rng.uniform(0.9, 1.3)
                z = rng.uniform(12, 90)
            else:
                speed = -rng.uniform(6, 15) / 30.0
                z = rng.uniform(20, 140)
            self._car(lane * rh, z, speed)
        for s in (-1, 1):
            z = self.s.z0 + rng.uniform(0, 20)
            while z < self.s.z1:
                if rng.random() < 0.5 * crowd:
                    self._car(s * (rh - 1.2), z, 0.0, parked=True)
                z += rng.uniform(6, 25)
        for _ in range(int(round(rng.uniform(2, 8) * crowd))):
            side = rng.choice([-1, 1])
            x = side * (rh + rng.uniform(0.8, self.s.sidewalk - 0.5))
            speed = rng.choice([-1, 1]) * rng.uniform(1.0, 1.7) / 30.0
            if rng.random() < 0.2:   # crossing the road ahead
                self._person(-side * rh, rng.uniform(15, 50), side * abs(speed), 0.0)
            else:
                self._person(x, rng.uniform(3, 70), 0.0, speed)
        for _ in range(int(round(rng.uniform(0, 3) * crowd))):
            side = rng.choice([-1, 1])
            self._bicyclist(side * (rh - 0.7), rng.uniform(8, 60),
                            side * rng.uniform(4, 7) / 30.0)

    def _bicyclist(self, x, z, vz):
        obj = self._person(x, z, 0.0, vz, cls=BICYCLIST, bottom=0.55)
        frame = Material((0.15, 0.15, 0.18), tx.GRID, 2.0, 0.6)
        self.b.panel([(0, 0, -0.85), (0, -1.0, -0.85), (0, -1.0, 0.85), (0, 0, 0.85)],
                     cls=BICYCLIST, material=frame, obj=obj)


def _ego_trajectory(rng, frames, speed, height, difficulty):
    t = np.arange(frames, dtype=np.float64)
    yaw = (rng.uniform(-0.1, 0.1) * difficulty
           + rng.uniform(0, 0.12) * difficulty * np.sin(2 * np.pi * t / rng.uniform(40, 120)
                                                        + rng.uniform(0, 2 * np.pi)))
    pitch = 0.012 * difficulty * np.sin(2 * np.pi * t / rng.uniform(8, 20)) + rng.normal(
        0, 0.002 * difficulty, frames)
    pos = np.zeros((frames, 3))
    pos[:, 0] = np.cumsum(speed * np.sin(yaw))
    pos[:, 1] = -height
    pos[:, 2] = np.cumsum(speed * np.cos(yaw)) - speed
    rot = np.stack([rotation_yaw_pitch(y, p) for y, p in zip(yaw, pitch)])
    return pos, rot


def build_scene(rng: np.random.Generator, frames: int, difficulty: float) -> Scene:
    """Lay out a random street and its traffic for a clip of ``frames`` frames at 30 Hz."""
    speed = rng.uniform(5, 10 + 6 * difficulty) / 30.0   # metres per frame
    z_end = speed * frames + 160.0
    street = _Street(rng, difficulty, (-30.0, z_end))
    street.ground()
    street.buildings()
    street.poles_signs_trees()
    traffic = _Traffic(street, speed, frames)
    traffic.populate(difficulty)
    cam_pos, cam_rot = _ego_trajectory(rng, frames, speed, rng.uniform(1.25, 1.6), difficulty)
    cam_pos[:, 0] += street.road_half * rng.choice([0.25, 0.75]) - cam_pos[0, 0]
    elevation, azimuth = rng.uniform(0.3, 1.2), rng.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                    np.cos(elevation) * np.cos(azimuth)])
    t = np.arange(frames)
    light = 0.25 * difficulty
    exposure = (rng.uniform(0.8, 1.15)
                * (1 + light * np.sin(2 * np.pi * t / rng.uniform(20, 90) + rng.uniform(0, 6)))
                * (1 + rng.normal(0, 0.03 * difficulty, frames)))
    horizon = _jitter(rng, (0.75, 0.8, 0.85), 0.1)
    zenith = _jitter(rng, (0.35, 0.5, 0.8), 0.1)
    return Scene(
        quads=street.b.build(), obj_start=np.stack(traffic.start),
        obj_step=np.stack(traffic.step), cam_pos=cam_pos, cam_rot=cam_rot, sun=sun,
        ambient=rng.uniform(0.45, 0.6), exposure=exposure,
        tint=np.array(_jitter(rng, (1.0, 1.0, 1.0), 0.08 * (1 + difficulty))),
        sky_colors=np.array([horizon, zenith]))
