"""
Write a long generated drive: streets of the synthetic world one after the other, at 30 Hz.

A fleet's drive lasts hours. This writes ``--minutes`` of 30 Hz video, street after street of
``--street`` frames each (a cut between streets, as between two recordings), every frame
labeled, rendered as it is written so memory stays flat. Rendering costs about 25 ms a frame
at 640x480 on these cores and far more at 1080p: ``--streets N`` renders only N distinct
streets and drives them again in turn (same messages and bytes as new streets; the bag's
stamps keep rising, so the package, which keys a drive by its stamps and message count, never
by pixels, sees one long drive).

Images go on ``/camera/image_raw/compressed`` as JPEG (quality 95, as a recorder of
image_transport's compressed stream stores them) or, with ``--raw``, on ``/camera/image_raw``
as rgb8; the labels go raw (mono8) on ``/camera/labels`` (none with ``--unlabeled``). What was
written goes to ``<out>.json`` beside the bag (`fleet_memory.py` reads it).

    python long_drive.py --out /tmp/drive_480 --size 480x640 --minutes 10
"""

import argparse
import json
import logging
from pathlib import Path
import time

from stkd_ros.bag.writer import ImageBagWriter
from stkd_ros.commands.synth import BAG_START_NS, LABEL_TOPIC, parse_size
from stkd_ros.data.synthetic import FPS, SyntheticConfig, SyntheticWorld

log = logging.getLogger('long_drive')
JPEG_TOPIC = '/camera/image_raw/compressed'
RAW_TOPIC = '/camera/image_raw'


def street_frames(world: SyntheticWorld, streets: int, frames: int):
    """Yield (image, label) for ``frames`` frames: street 0, 1, .. streets-1, 0, .. in turn."""
    street = world.config.frames
    rendered = []   # the distinct streets' frames, kept only when they will be driven again
    for i in range(frames):
        index, t = divmod(i, street)
        if index < streets:
            image, label, _ = world.frame(index, t)
            if frames > streets * street:
                rendered.append((image, label))
            yield image, label
        else:
            yield rendered[i % (streets * street)]


def write_long_drive(out: Path, size, minutes: float, street: int, *, streets: int = None,
                     seed: int = 11, raw: bool = False, labels: bool = True) -> dict:
    frames = int(round(minutes * 60 * FPS))
    streets = streets or -(-frames // street)
    world = SyntheticWorld(SyntheticConfig(height=size[0], width=size[1], frames=street,
                                           seed=seed))
    topic = RAW_TOPIC if raw else JPEG_TOPIC
    period_ns = int(1e9 / FPS)
    start = time.perf_counter()
    topics = [topic, LABEL_TOPIC] if labels else [topic]
    with ImageBagWriter(out, topics, jpeg_topics=[] if raw else [topic]) as w:
        for i, (image, label) in enumerate(street_frames(world, streets, frames)):
            stamp = BAG_START_NS + i * period_ns
            w.write(topic, image, stamp)
            if labels:
                w.write(LABEL_TOPIC, label, stamp)
            if (i + 1) % 1800 == 0:
                log.info('%d of %d frames written', i + 1, frames)
    bag_bytes = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return {'bag': str(out), 'image_topic': topic,
            'label_topic': LABEL_TOPIC if labels else None,
            'size': list(size), 'frames': frames, 'street_frames': street,
            'distinct_streets': min(streets, -(-frames // street)), 'seed': seed,
            'minutes': frames / FPS / 60, 'bag_bytes': bag_bytes,
            'seconds': time.perf_counter() - start}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='the bag folder to write (must not exist)')
    parser.add_argument('--size', default='480x640', help='HxW')
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--street', type=int, default=900, help='frames per street (30 s)')
    parser.add_argument('--streets', type=int, default=None,
                        help='distinct streets rendered (default: as many as the drive needs)')
    parser.add_argument('--seed', type=int, default=11)
    parser.add_argument('--raw', action='store_true', help='rgb8 Image instead of JPEG')
    parser.add_argument('--unlabeled', action='store_true', help='no label topic')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    info = write_long_drive(Path(args.out), parse_size(args.size), args.minutes, args.street,
                            streets=args.streets, seed=args.seed, raw=args.raw,
                            labels=not args.unlabeled)
    out = Path(args.out)
    (out.parent / f'{out.name}.json').write_text(json.dumps(info, indent=2))
    log.info('%s', info)


if __name__ == '__main__':
    main()
