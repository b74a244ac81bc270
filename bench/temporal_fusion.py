"""
Benchmark: the latency temporal fusion adds to each frame, at 360x480 and 512x1024.

What segment_node does per frame with ``temporal_fusion`` on, beyond the per-frame mask: the
stage's :meth:`TemporalFusion.fused_mask`: its update (the frame shrunk to the model's output
size, DIS flow to the frame before, the photometric check, the carry and the weighted sum) and
its mask (the argmax at the frame's size). The probabilities are the
Segmenter's for each frame, computed before the clock starts, at the output size the model
gives for that frame: the default student (``ModelConfig.arch``, random weights) at the
default model input size (``DataConfig.eval_size``), or the model file of ``--model``. The
frames are a moving synthetic street (one clip, 30 Hz stamps), so the stage fuses (the
``resets`` column counts the frames that started over instead: the first, and any cut).

Timed with OpenCV (and PyTorch) at 1 and at 2 threads. Beside the stage alone: the whole
``Segmenter.segment`` of a frame with the stage off and on (network included) and the
difference of their medians, what the node's frame costs more. Run it on quiet cores; the
issue's target is at most 3 ms more per frame at 360x480 on 2 cores.
"""

import argparse
from dataclasses import replace
from pathlib import Path
import tempfile
import time

import cv2
import numpy as np
from random_model import random_model_file
from report import emit
from stkd_ros.config import DataConfig, ModelConfig
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
from stkd_ros.inference import Segmenter
from stkd_ros.temporal_fusion import FusionSettings, TemporalFusion
import torch

FPS = 30.0


def percentiles_ms(times) -> dict:
    ms = np.asarray(times) * 1e3
    return {'median_ms': float(np.median(ms)), 'p90_ms': float(np.percentile(ms, 90))}


def stream(frames, probs, settings) -> tuple:
    """Time update + mask over the stream once; returns (seconds per frame, resets)."""
    fusion, times, resets = TemporalFusion(settings), [], 0
    for t, (frame, p) in enumerate(zip(frames, probs)):
        start = time.perf_counter()
        fusion.fused_mask(frame, p, t / FPS)
        times.append(time.perf_counter() - start)
        resets += fusion.last_reset is not None
    return times, resets


def segment_times(segmenter, frames, settings) -> tuple:
    """Seconds per frame of Segmenter.segment with the stage off, and on (one stream)."""
    fusion, off, on = TemporalFusion(settings), [], []
    for t, frame in enumerate(frames):
        start = time.perf_counter()
        segmenter.segment(frame)
        off.append(time.perf_counter() - start)
        start = time.perf_counter()
        segmenter.segment(frame, fusion=fusion, stamp=t / FPS)
        on.append(time.perf_counter() - start)
    return off, on


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=200, help='frames per size, timed')
    parser.add_argument('--sizes', default='360x480,512x1024', help='frame sizes HxW')
    parser.add_argument('--threads', default='1,2', help='OpenCV and PyTorch threads')
    parser.add_argument('--model', default=None, metavar='FILE',
                        help='a model file (default: the default student, random weights, at '
                        'the default input size)')
    parser.add_argument('--levels', default=None,
                        help="finest DIS levels to time, e.g. '0,1,2' (default: the settings')")
    parser.add_argument('--fusion', action='append', default=[], metavar='KEY=VALUE',
                        help='a FusionSettings field, as on `stkd evaluate` (repeatable)')
    parser.add_argument('--out', default=None, help='results folder (default bench/results)')
    args = parser.parse_args()
    base = FusionSettings.parse(args.fusion)
    levels = ([int(v) for v in args.levels.split(',')] if args.levels
              else [base.flow_finest_scale])
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or random_model_file(Path(tmp) / 'student.safetensors',
                                                ModelConfig().arch, DataConfig().eval_size)
        segmenter = Segmenter(model)
        rows = []
        for size in args.sizes.split(','):
            h, w = (int(v) for v in size.split('x'))
            world = SyntheticWorld(SyntheticConfig(height=h, width=w, frames=args.frames))
            frames = [world.frame(0, t)[0] for t in range(args.frames)]
            probs = [segmenter.probabilities(segmenter.preprocess(f))[0] for f in frames]
            for level, threads in ((v, int(n)) for v in levels
                                   for n in args.threads.split(',')):
                settings = replace(base, flow_finest_scale=level)
                cv2.setNumThreads(threads)
                torch.set_num_threads(threads)
                stream(frames[:5], probs[:5], settings)          # warm-up
                times, resets = stream(frames, probs, settings)
                off, on = segment_times(segmenter, frames, settings)
                off_ms, on_ms = (percentiles_ms(x)['median_ms'] for x in (off, on))
                rows.append({'frame': size, 'probabilities': 'x'.join(map(str, probs[0].shape)),
                             'flow_finest_scale': level, 'threads': threads,
                             **percentiles_ms(times), 'frames': len(frames),
                             'resets': resets, 'segment_off_ms': off_ms,
                             'segment_on_ms': on_ms, 'added_ms': on_ms - off_ms,
                             'fusion': settings.describe()})
    for row in rows:
        row.update(model=str(args.model or f'{ModelConfig().arch} (random weights)'))
    emit('temporal_fusion', rows, ['frame', 'probabilities', 'flow_finest_scale', 'threads',
                                   'median_ms', 'p90_ms', 'resets', 'segment_off_ms',
                                   'segment_on_ms', 'added_ms'], args.out)


if __name__ == '__main__':
    main()
