"""Benchmark: how fast the synthetic world renders a frame with its label and exact flow."""

import argparse
import statistics
import time

from report import emit
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld


def measure(height: int, width: int, clips: int, frames: int) -> dict:
    world = SyntheticWorld(SyntheticConfig(height=height, width=width, frames=frames))
    layout, per_frame = [], []
    for c in range(clips):
        start = time.perf_counter()
        world.scene(c)
        layout.append(time.perf_counter() - start)
        for t in range(frames - 1):
            start = time.perf_counter()
            world.frame(c, t, t + 1)   # image, label and flow t -> t+1
            per_frame.append(time.perf_counter() - start)
    frame_ms = statistics.median(per_frame) * 1e3
    layout_ms = statistics.median(layout) * 1e3
    return {'size': f'{height}x{width}', 'frame_ms_median': frame_ms,
            'frame_ms_p90': sorted(per_frame)[int(0.9 * len(per_frame))] * 1e3,
            'scene_layout_ms': layout_ms,
            'amortized_ms': frame_ms + layout_ms / (frames - 1),
            'frames_timed': len(per_frame)}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--clips', type=int, default=4)
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--out', default=None, help='directory for the JSON (bench/results)')
    args = parser.parse_args()
    rows = [measure(h, w, args.clips, args.frames) for h, w in ((128, 256), (256, 512))]
    emit('synthetic', rows, ['size', 'frame_ms_median', 'frame_ms_p90', 'scene_layout_ms',
                             'amortized_ms', 'frames_timed'], args.out)


if __name__ == '__main__':
    main()
