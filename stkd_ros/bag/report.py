"""
The eval-bag report: metrics.json, report.md, plots, and overlay samples.

Written for the question a perception engineer brings to it: which model to ship? So the
models sit side by side: accuracy where labels exist, flicker over the drive and per class,
latency, and the frames where each model is most and least stable.
"""

import json
from pathlib import Path

from matplotlib.figure import Figure   # no pyplot: no GUI backend, no global state
import numpy as np

from stkd_ros.data.image_io import write_rgb


#: What the stability columns count, and which to read first, under every report's table.
STABILITY_NOTE = (
    'Flicker and TC count the same pixels of each pair of consecutive frames: those the flow '
    '({flow}) carries inside the image and the occlusion check finds in both frames, over the '
    'whole drive. Flicker is the share of them whose class changed; read it first: TC is their '
    'mIoU, averaged over classes, so a class predicted in a few pixels moves it. TC (ETC) '
    'counts occluded pixels too, as ETC (Liu et al. 2020) published it, for comparison with '
    'the literature. All are label-free.')


def summarize(result: dict) -> dict:
    """Per-model figures of an :func:`~stkd_ros.bag.evaluate.evaluate_bag` result."""
    models = {}
    for t in result['tracks']:
        classes = t.segmenter.classes
        lat = np.asarray(t.latency_ms)
        steps = [f for f in t.flicker if not np.isnan(f)]
        entry = {
            'frames': len(t.latency_ms),
            **t.stability.summary(classes),
            'flicker_p95': float(np.percentile(steps, 95)) if steps else float('nan'),
            'latency_ms': {f'p{q}': float(np.percentile(lat, q)) for q in (50, 95, 99)},
            'class_share': dict(zip(classes, (t.class_pixels / max(t.class_pixels.sum(), 1))
                                    .round(5).tolist())),
        }
        if t.confusion.mat.sum() > 0:
            entry.update(t.confusion.summary(list(classes)))
        models[t.name] = entry
    return {'bag': result['bag'], 'topic': result['topic'], 'frames': len(result['stamps']),
            'rejected_frames': result['rejected'], 'labeled': result['labeled'],
            'stability_flow': result['stability_flow'], 'models': models}


def _plot_flicker(result, path):
    fig = Figure(figsize=(10, 3.2))
    ax = fig.subplots()
    t0 = result['stamps'][0]
    for t in result['tracks']:
        x = (np.asarray(t.stamps) - t0) / 1e9
        ax.plot(x, t.flicker, label=f'{t.name} (drive: {t.stability.flicker():.4f})', lw=1.2)
    ax.set_xlabel('time in the drive [s]')
    ax.set_ylabel('flicker (share of pixels\nchanging class)')
    ax.set_title('Flicker over the drive (flow-compensated, lower is steadier)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_per_class(summary, result, path):
    tracks = result['tracks']
    classes = list(tracks[0].segmenter.classes)
    panels = [('per_class_flicker', 'flicker per class (lower is better; no bar: never '
                                    'predicted)')]
    if summary['labeled']:
        panels.append(('per_class_iou', 'IoU per class (higher is better)'))
    fig = Figure(figsize=(10, 3.2 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)
    width = 0.8 / len(tracks)
    x = np.arange(len(classes))
    for ax, (key, title) in zip(axes[:, 0], panels):
        for i, t in enumerate(tracks):
            values = [summary['models'][t.name].get(key, {}).get(c, np.nan) for c in classes]
            ax.bar(x + i * width, np.nan_to_num(values), width, label=t.name)
        ax.set_xticks(x + width * (len(tracks) - 1) / 2, classes, rotation=30, ha='right')
        ax.set_title(title)
        ax.grid(axis='y', alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_latency(result, path):
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    for t in result['tracks']:
        ax.hist(t.latency_ms, bins=30, alpha=0.6,
                label=f'{t.name} (p50 {np.median(t.latency_ms):.1f} ms)')
    ax.set_xlabel('inference latency per frame [ms]')
    ax.set_ylabel('frames')
    ax.set_title('Latency (this machine)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _samples(result, out: Path, fetch_frames) -> list:
    """Frame | overlay for each model, at each model's steadiest and least steady step."""
    picks = []
    for t in result['tracks']:
        if not np.isnan(t.flicker).all():
            picks += [(t, 'least_stable', int(np.nanargmax(t.flicker))),
                      (t, 'most_stable', int(np.nanargmin(t.flicker)))]
    frames = fetch_frames({t.stamps[i] for t, _, i in picks}) if picks else {}
    written = []
    for t, label, idx in picks:
        stamp = t.stamps[idx]
        frame = frames[stamp]
        row = [frame] + [x.segmenter.overlay(frame, x.segmenter.segment(frame), 0.55)
                         for x in result['tracks']]
        path = out / f'sample_{t.name.replace("/", "_")}_{label}.png'
        write_rgb(path, np.concatenate(row, axis=1))
        written.append((t.name, label, t.flicker[idx], path.name))
    return written


def write_report(result: dict, out, fetch_frames) -> Path:
    """
    Write the whole report into directory ``out``; returns the path of report.md.

    ``fetch_frames(stamps)`` returns {stamp: RGB frame}: frames are read again for the
    samples instead of being kept through the whole drive.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(result)
    (out / 'metrics.json').write_text(json.dumps(summary, indent=2))
    _plot_flicker(result, out / 'flicker_over_time.png')
    _plot_per_class(summary, result, out / 'per_class.png')
    _plot_latency(result, out / 'latency.png')
    samples = _samples(result, out, fetch_frames)
    lines = [f'# eval-bag: {Path(summary["bag"]).name}', '',
             f'Topic `{summary["topic"]}`, {summary["frames"]} frames'
             f'{", labeled" if summary["labeled"] else ""}; '
             f'{summary["rejected_frames"]} frames could not be decoded.', '',
             '| model | mIoU | flicker | flicker (p95 of steps) | TC | TC (ETC) '
             '| latency p50 / p95 [ms] |',
             '|---|---|---|---|---|---|---|']
    for name, m in summary['models'].items():
        miou = f'{m["miou"]:.4f}' if 'miou' in m else 'n/a (no labels)'
        lat = m['latency_ms']
        lines.append(f'| {name} | {miou} | {m["flicker"]:.4f} | {m["flicker_p95"]:.4f} '
                     f'| {m["tc"]:.4f} | {m["tc_etc"]:.4f} '
                     f'| {lat["p50"]:.1f} / {lat["p95"]:.1f} |')
    lines += ['', STABILITY_NOTE.format(flow=summary['stability_flow']), '',
              '![flicker over time](flicker_over_time.png)', '',
              '![per class](per_class.png)', '', '![latency](latency.png)', '']
    if samples:
        lines += ['## Most and least stable moments', '',
                  'Each image: the frame, then the overlay of every model, at the step where '
                  'the named model flickers least or most.', '']
        for name, label, value, file in samples:
            lines += [f'**{name}, {label.replace("_", " ")}** (flicker {value:.4f})', '',
                      f'![{name} {label}]({file})', '']
    path = out / 'report.md'
    path.write_text('\n'.join(lines))
    return path
