"""
`stkd demo`: the main job on the built-in synthetic world.

For now it generates a small synthetic set and writes a preview of what the world holds:
frames, exact labels, and exact flow as colour, for a few clips.
"""

import logging
from pathlib import Path

import numpy as np
from stkd_ros.data.classes import colorize
from stkd_ros.data.image_io import write_rgb
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
from stkd_ros.flow.visualize import flow_to_color
from stkd_ros.synth import synth

log = logging.getLogger(__name__)


def preview(world: SyntheticWorld, clips: int, path: Path, gap: int = 3) -> Path:
    """One row per clip: frame t, its labels, frame t+gap, flow t -> t+gap."""
    rows = []
    for c in range(clips):
        clip = world.clip(c, start=0, length=2, gap=gap)
        rows.append(np.concatenate([clip.frames[0], colorize(clip.labels[0]), clip.frames[1],
                                    flow_to_color(clip.flows[0])], axis=1))
    write_rgb(path, np.concatenate(rows, axis=0))
    return path


def run_demo(out='runs/demo', quick: bool = False) -> dict:
    out = Path(out)
    size = (128, 256) if quick else (256, 512)
    clips, frames = (3, 8) if quick else (6, 30)
    data = synth(out / 'synthetic', clips=clips, frames=frames, size=size, bag=False)
    world = SyntheticWorld(SyntheticConfig(height=size[0], width=size[1], frames=frames))
    image = preview(world, clips, out / 'preview.png')
    print(f'synthetic data (CamVid layout): {data["root"]}  frames per split: {data["frames"]}')
    print(f'preview (frame t | labels | frame t+3 | flow t->t+3): {image}')
    return {'data': data, 'preview': str(image)}
