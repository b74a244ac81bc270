"""Benchmark: speed and end-point error of each flow method against the synthetic ground truth."""

import argparse
import statistics
import time

import numpy as np
from report import emit
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
from stkd_ros.flow import build_flow


def measure(method: str, settings: dict, pairs: list) -> dict:
    flow = build_flow(method, **settings)
    flow(*pairs[0][:2])   # warm-up
    times, epe, outliers = [], [], []
    for img0, img1, truth in pairs:
        start = time.perf_counter()
        est = flow(img0, img1)
        times.append(time.perf_counter() - start)
        err = np.linalg.norm(est - truth, axis=-1)
        epe.append(float(err.mean()))
        outliers.append(float((err > 3.0).mean()))
    return {'method': flow.key(), 'ms_per_pair': statistics.median(times) * 1e3,
            'epe_px': float(np.mean(epe)), 'outliers_3px': float(np.mean(outliers))}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--pairs', type=int, default=12)
    parser.add_argument('--raft-weights', default=None,
                        help='local torchvision raft_small state dict, to include RAFT')
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    world = SyntheticWorld(SyntheticConfig(height=256, width=512, frames=8, seed=100))
    pairs = []
    for i in range(args.pairs):
        clip = world.clip(i % 6, start=i // 6, length=2)
        pairs.append((clip.frames[0], clip.frames[1], clip.flows[0]))
    truth = np.mean([np.linalg.norm(p[2], axis=-1).mean() for p in pairs])
    rows = [{'method': 'zero flow (reference)', 'ms_per_pair': 0.0, 'epe_px': float(truth),
             'outliers_3px': float(np.mean([(np.linalg.norm(p[2], axis=-1) > 3).mean()
                                            for p in pairs]))}]
    methods = [('dis', {'preset': 'ultrafast'}), ('dis', {'preset': 'fast'}),
               ('dis', {'preset': 'medium'}), ('farneback', {})]
    if args.raft_weights:
        methods.append(('raft', {'size': 'small', 'weights': args.raft_weights}))
    rows += [measure(m, s, pairs) for m, s in methods]
    emit('flow', rows, ['method', 'ms_per_pair', 'epe_px', 'outliers_3px'], args.out)


if __name__ == '__main__':
    main()
