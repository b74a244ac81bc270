"""
Benchmark: what an hour of a fleet's video costs, in time and disk, from measured rates.

On a drive `stkd synth --bag` generates (``--size``, ``--frames``; or ``--drive`` for one
made before, since rendering 1080p takes longer than everything measured here):

- decoding: the drive's frames decoded once, resized to the training size and kept as JPEG
  (the frame pack training and `stkd label` read), at the config's ``data.eval_size`` and at
  512x1024, with the disk each takes a frame against the bag's own;
- `stkd label`, per test-time augmentation setting (none: one pass at scale 1; the default:
  the config's ``label.scales`` and ``label.flip``), reading the frames decoded above (with
  ``--tta-frames N``, the default setting labels the drive's first N frames only: it costs
  several passes a frame);
- `stkd eval-bag`, one model, no report.

Models have random weights (speed, not accuracy): the config's teacher at its input size,
and ``--student``. Each row gives frames/s and the hours an hour of 30 Hz video (108,000
frames) takes on this machine and on ``--machines`` (labeling and decoding split by drive
or by shard, so N machines take 1/N of the time). Run it on an idle machine.
"""

import argparse
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

from random_model import random_model_file
from report import emit
from stkd_ros.commands.eval_bag import eval_bag
from stkd_ros.commands.label import label
from stkd_ros.commands.synth import IMAGE_TOPIC
from stkd_ros.config import load_config
from stkd_ros.data.bag_video import decode_topic, drive_files
from stkd_ros.data.classes import CAMVID_CLASSES, CAMVID_PALETTE
from stkd_ros.data.frame_pack import index_path, PackReader
from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'distill' / 'synthetic.yaml'
HOUR_FRAMES = 30 * 3600
TTA = {'none': ['label.scales=[1.0]', 'label.flip=false'], 'default': []}


def generate_drive(work: Path, size: str, frames: int) -> Path:
    """`stkd synth --bag`: one street of ``frames`` frames at ``size``; returns the bag."""
    subprocess.run([sys.executable, '-m', 'stkd_ros.cli', 'synth', '--out', str(work / 'synth'),
                    '--clips', '1', '--frames', str(frames), '--size', size, '--seed', '11',
                    '--bag'], check=True)
    return work / 'synth' / 'bag'


def first_frames(drive: Path, topic: str, count: int, out: Path) -> Path:
    """Copy the first ``count`` messages of ``topic`` into the bag ``out`` (same bytes)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from stkd_ros.bag.reader import connections_for, open_bag
    if out.exists():
        return out
    writer = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP)
    with open_bag(drive) as reader, writer:
        conn = connections_for(reader, [topic])[0]
        target = writer.add_connection(topic, conn.msgtype, typestore=reader.typestore)
        for n, (_, stamp, raw) in enumerate(reader.messages(connections=[conn])):
            if n == count:
                break
            writer.write(target, stamp, raw)
    return out


def teacher_file(path: Path, cfg) -> Path:
    """Write the config's teacher with random weights, at the config's input size."""
    model = build_model(cfg.teacher.arch, len(CAMVID_CLASSES), **cfg.teacher.args)
    save_model_file(path, model, {
        'arch': cfg.teacher.arch, 'arch_args': dict(cfg.teacher.args),
        'num_classes': len(CAMVID_CLASSES), 'classes': list(CAMVID_CLASSES),
        'palette': CAMVID_PALETTE.tolist(), 'input_size': list(cfg.data.eval_size),
        'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]})
    return path


def rate_row(stage: str, frames: int, seconds: float, machines: int, **extra) -> dict:
    hours = HOUR_FRAMES / (frames / seconds) / 3600
    return {'stage': stage, 'frames': frames, 'seconds': seconds,
            'frames_per_s': frames / seconds, 'hours_per_video_hour': hours,
            f'hours_on_{machines}': hours / machines, **extra}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', default='1080x1920', help='the generated drive (HxW)')
    parser.add_argument('--frames', type=int, default=5400, help='default: 3 min at 30 Hz')
    parser.add_argument('--drive', default=None, help='a drive made before (skips synth), e.g. '
                        'by long_drive.py')
    parser.add_argument('--topic', default=IMAGE_TOPIC, help="the drive's image topic")
    parser.add_argument('--work', default=None, help='where the drive and caches go')
    parser.add_argument('--student', default='lraspp_mobilenetv3', help="eval-bag's model")
    parser.add_argument('--machines', type=int, default=8)
    parser.add_argument('--tta-frames', type=int, default=0,
                        help='label with the default test-time augmentation only the first N '
                             'frames (a copy of them; its rate per frame does not depend on '
                             "the drive's length); 0: the whole drive")
    parser.add_argument('--out', default=None, help='JSON folder (default bench/results)')
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix='bag_throughput_'))
    work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(CONFIG)
    drive = Path(args.drive) if args.drive else generate_drive(work, args.size, args.frames)
    bag_bytes = sum(f.stat().st_size for f in drive_files(drive))

    rows = []
    sizes = [tuple(cfg.data.eval_size), (512, 1024)]
    for size in sizes:
        cache = work / f'frames_{size[0]}x{size[1]}'
        start = time.perf_counter()
        pack = decode_topic(drive, args.topic, cache, size)
        seconds = time.perf_counter() - start
        frames = len(PackReader(pack))
        pack_bytes = pack.stat().st_size + index_path(pack).stat().st_size
        rows.append(rate_row(f'decode+resize {size[0]}x{size[1]}', frames, seconds,
                             args.machines, bytes_per_frame=pack_bytes / frames,
                             gb_per_video_hour=pack_bytes / frames * HOUR_FRAMES / 1e9))
    rows.insert(0, {'stage': 'bag on disk', 'frames': frames,
                    'bytes_per_frame': bag_bytes / frames,
                    'gb_per_video_hour': bag_bytes / frames * HOUR_FRAMES / 1e9})

    teacher = teacher_file(work / 'teacher.safetensors', cfg)
    frame_cache = work / f'frames_{sizes[0][0]}x{sizes[0][1]}'
    for name, settings in TTA.items():
        overrides = ['data.synthetic.unlabeled_clips=0', f'data.frame_cache={frame_cache}'] + \
            settings
        store = work / f'labels_{name}'
        part = drive
        if name == 'default' and args.tta_frames:
            part = first_frames(drive, args.topic, args.tta_frames, work / 'first_frames')
            decode_topic(part, args.topic, frame_cache, sizes[0])   # decoding is timed above
        summary = label(CONFIG, teacher, store, bags=[part], topic=args.topic,
                        overrides=overrides, progress=False)
        rows.append(rate_row(f'label, TTA {name} ({summary["passes"]} passes)',
                             summary['frames_labeled'], summary['seconds'], args.machines,
                             device=summary['device']))

    model = random_model_file(work / 'student.safetensors', args.student,
                              tuple(cfg.data.eval_size))
    start = time.perf_counter()
    result = eval_bag(drive, [str(model)], args.topic)
    rows.append(rate_row(f'eval-bag ({args.student})', result['frames'],
                         time.perf_counter() - start, args.machines))

    print(f'drive {drive} ({frames} frames, {bag_bytes / 1e9:.2f} GB); {os.cpu_count()} CPUs')
    emit('bag_throughput', rows,
         ['stage', 'frames', 'seconds', 'frames_per_s', 'hours_per_video_hour',
          f'hours_on_{args.machines}', 'bytes_per_frame', 'gb_per_video_hour'], args.out)


if __name__ == '__main__':
    main()
