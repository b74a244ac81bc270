"""
Diagnostic: does a model put its classes on their frame's pixels, or a fraction of a pixel off.

No training. Each model segments the 32 tuning streets of the unlabeled-video protocol (both
frames of their 128 clips, config/distill/synthetic_video.yaml); its logits are moved by
(dx, dy) pixels (bilinear resampling, -0.5 to +0.5 in steps of 0.25; positive is right and
down) before the argmax, and each move is scored by mIoU against the world's truth. A model
that learned from labels lying off their frames scores best moved back the other way; an
aligned one at (0, 0).

Why: until c15bcdb the training views' class maps were resized with OpenCV's INTER_NEAREST,
which samples at floor(x / scale) and puts a map up to half a source pixel up and left of the
bilinearly resized frame; models trained on them learned to put classes down and right.

Run from the repository root:
  python -m experiments.map_offset NAME=MODEL_FILE [NAME=MODEL_FILE ...] [--out NAME]
Writes experiments/results/NAME.json (default map_offset).
"""

import argparse

from bench.report import emit
from experiments.best_student import RESULTS
from experiments.unlabeled_ablation import CONFIG
import numpy as np
from stkd_ros.config import load_config
from stkd_ros.flow.warp import warp
from stkd_ros.inference import Segmenter
from stkd_ros.metrics import ConfusionMatrix
from stkd_ros.training.data import build_clips
import torch

MOVES = (-0.5, -0.25, 0.0, 0.25, 0.5)


def measure(name: str, path: str, clips) -> dict:
    """Score one model under every move; return its table row."""
    segmenter = Segmenter(path)
    classes = list(segmenter.classes)
    matrices = {(dx, dy): ConfusionMatrix(len(classes)) for dx in MOVES for dy in MOVES}
    # Moving the map by d is warping it along the constant flow -d.
    flows = {(dx, dy): torch.tensor([-dx, -dy]).view(1, 2, 1, 1).expand(
        1, 2, *segmenter.input_size) for dx, dy in matrices}
    for i in range(len(clips)):
        clip = clips[i]
        if clip.frames.shape[1:3] != tuple(segmenter.input_size):
            raise SystemExit(f'{path}: input size {segmenter.input_size}, frames '
                             f"{clip.frames.shape[1:3]}: moves are in the input's pixels")
        x = np.concatenate([segmenter.preprocess(f) for f in clip.frames[:2]])
        logits = torch.from_numpy(segmenter.logits(x))
        labels = torch.from_numpy(clip.labels[:2].astype(np.int64))
        for move, matrix in matrices.items():
            matrix.update(warp(logits, flows[move].expand(len(logits), -1, -1, -1)).argmax(1),
                          labels)
    miou = {move: m.summary(classes)['miou'] for move, m in matrices.items()}
    best = max(miou, key=miou.get)
    return {'model': name, 'miou': round(miou[0.0, 0.0], 4), 'best dx': best[0],
            'best dy': best[1], 'miou moved': round(miou[best], 4),
            'gain': round(miou[best] - miou[0.0, 0.0], 4),
            'by move': {f'{dx:+.2f},{dy:+.2f}': round(v, 4) for (dx, dy), v in miou.items()}}


def main():
    """Measure the models given and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('models', nargs='+', help='NAME=MODEL_FILE')
    parser.add_argument('--out', default='map_offset')
    parser.add_argument('--results', default=str(RESULTS))
    args = parser.parse_args()
    models = [m.split('=', 1) for m in args.models]
    if any(len(m) != 2 for m in models):
        raise SystemExit('models: expected NAME=MODEL_FILE for each')
    torch.set_num_threads(1)
    clips = build_clips(load_config(CONFIG).data, 'tune', clip_length=2, gap=1)
    rows = [measure(name, path, clips) for name, path in models]
    emit(args.out, rows, ['model', 'miou', 'best dx', 'best dy', 'miou moved', 'gain'],
         args.results)


if __name__ == '__main__':
    main()
