"""`stkd synth`: write the synthetic world to disk (CamVid layout, optionally a ROS 2 bag)."""

import logging
from pathlib import Path

from stkd_ros.data.export import write_camvid_layout
from stkd_ros.data.synthetic import FPS, SyntheticConfig, SyntheticWorld
from stkd_ros.errors import InputError

log = logging.getLogger(__name__)

IMAGE_TOPIC = '/camera/image_raw'
LABEL_TOPIC = '/camera/labels'
BAG_START_NS = 1_700_000_000 * 1_000_000_000   # fixed, so that bags are reproducible


def parse_size(text: str):
    """Parse 'HxW' into (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise InputError(f'size must look like HxW (e.g. 256x512), got {text!r}') from None
    if h <= 0 or w <= 0:
        raise InputError(f'size must be positive, got {text!r}')
    return h, w


def synth(out, *, clips: int = 4, frames: int = 30, size=(256, 512), seed: int = 0,
          difficulty: float = 0.6, bag: bool = False, storage: str = 'mcap') -> dict:
    """
    Write ``clips`` clips to ``out``; with ``bag``, also ``out/bag`` (30 Hz image + labels).

    Returns the paths written and frame counts.
    """
    if clips < 1:
        raise InputError(f'--clips must be at least 1, got {clips}')
    out = Path(out)
    world = SyntheticWorld(SyntheticConfig(height=size[0], width=size[1], frames=frames,
                                           difficulty=difficulty, seed=seed))
    result = {'root': str(out)}
    if not bag:
        result['frames'] = write_camvid_layout(world, out, clips)
        return result
    from stkd_ros.bag.writer import ImageBagWriter   # rosbags only when asked for
    period_ns = int(1e9 / FPS)
    bag_path = out / 'bag'
    with ImageBagWriter(bag_path, [IMAGE_TOPIC, LABEL_TOPIC], storage=storage) as writer:
        def on_frame(c, t, image, label):
            stamp = BAG_START_NS + (c * frames + t) * period_ns
            writer.write(IMAGE_TOPIC, image, stamp)
            writer.write(LABEL_TOPIC, label, stamp)
        result['frames'] = write_camvid_layout(world, out, clips, on_frame=on_frame)
    result['bag'] = str(bag_path)
    log.info('wrote bag %s (%s, %s)', bag_path, IMAGE_TOPIC, LABEL_TOPIC)
    return result
