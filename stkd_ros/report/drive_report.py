"""
The eval-bag report: metrics.json, report.md, report.html, plots, and overlay samples.

Written for the question a perception engineer brings to it: which model to ship? So the
models sit side by side: flicker over the drive and per class, accuracy where labels exist,
latency, the frames where each model is most and least stable, and (report.html) the drive
as a side-by-side video (``drive_video.py``, drawn during the evaluation's pass).
"""

import json
from pathlib import Path

from matplotlib.figure import Figure   # no pyplot: no GUI backend, no global state
import numpy as np

from stkd_ros.data.image_io import write_rgb
from stkd_ros.report.drive_page import write_page
from stkd_ros.report.drive_table import (drive_line, drive_notes, STABILITY_NOTE,
                                         SUMMARY_HEADERS, summary_rows)

#: The files every complete report holds: what marks a folder as an earlier report.
REPORT_FILES = ('report.md', 'report.html', 'metrics.json')


def is_report(folder: Path) -> bool:
    """Tell an empty folder or an earlier eval-bag report (which a new one replaces)."""
    names = {p.name for p in Path(folder).iterdir()}
    return not names or set(REPORT_FILES) <= names


def summarize(result: dict) -> dict:
    """Per-model figures of an :func:`~stkd_ros.commands.bag_evaluation.evaluate_bag` result."""
    models = {}
    for t in result['tracks']:
        classes = t.segmenter.classes
        lat = np.asarray(t.latency_ms)
        steps = [f for f in t.flicker if not np.isnan(f)]
        entry = {
            'frames': len(t.latency_ms),
            'temporal_fusion': t.fusion.settings.describe() if t.fusion else 'off',
            **t.stability.summary(classes),
            'flicker_p95': float(np.percentile(steps, 95)) if steps else float('nan'),
            'latency_ms': {f'p{q}': float(np.percentile(lat, q)) for q in (50, 95, 99)},
            'class_share': dict(zip(classes, (t.class_pixels / max(t.class_pixels.sum(), 1))
                                    .round(5).tolist())),
        }
        if t.confusion.mat.sum() > 0:
            entry.update(t.confusion.summary(list(classes)))
        models[t.name] = entry
    stamps = result['stamps']
    duration = (stamps[-1] - stamps[0]) / 1e9
    return {'bag': result['bag'], 'topic': result['topic'], 'frames': len(stamps),
            'duration_s': duration,
            'fps': (len(stamps) - 1) / duration if duration > 0 else None,
            'rejected_frames': result['rejected'], 'labeled': result['labeled'],
            'unmatched_labels': result['unmatched_labels'],
            'stability_flow': result['stability_flow'],
            'temporal_fusion': result['temporal_fusion'], 'models': models}


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


def _moments(result, out: Path) -> list:
    """
    Frame | overlays of every model, at each model's steadiest and least steady step.

    The masks are those the pass scored there (fused, with temporal fusion), kept by
    :meth:`~stkd_ros.commands.bag_evaluation.ModelTrack.keep_moment`.
    """
    moments = []
    for t in result['tracks']:
        for kind in ('least_stable', 'most_stable'):
            if kind not in t.moments:
                continue
            flicker, stamp, frame, masks = t.moments[kind]
            row = [frame] + [x.segmenter.overlay(frame, mask, 0.55)
                             for x, mask in zip(result['tracks'], masks)]
            path = out / f'sample_{t.name.replace("/", "_")}_{kind}.png'
            write_rgb(path, np.concatenate(row, axis=1))
            moments.append({'model': t.name, 'kind': kind, 'flicker': flicker,
                            'time_s': (stamp - result['stamps'][0]) / 1e9, 'file': path.name})
    return moments


def _markdown(summary: dict) -> str:
    lines = [f'# eval-bag: {Path(summary["bag"]).name}', '', drive_line(summary), '']
    lines += [f'> {note}\n' for note in drive_notes(summary)]
    lines += ['| ' + ' | '.join(SUMMARY_HEADERS) + ' |',
              '|' + '---|' * len(SUMMARY_HEADERS)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in summary_rows(summary)]
    lines += ['', STABILITY_NOTE.format(flow=summary['stability_flow']), '']
    if summary.get('video'):
        lines += [f'The drive, side by side: [{summary["video"]["file"]}]'
                  f'({summary["video"]["file"]}) (and in report.html).', '']
    lines += ['![flicker over time](flicker_over_time.png)', '',
              '![per class](per_class.png)', '', '![latency](latency.png)', '']
    if summary['moments']:
        lines += ['## Most and least stable moments', '',
                  'Each image: the frame, then the overlay of every model, at the step where '
                  'the named model flickers least or most.', '']
        for m in summary['moments']:
            lines += [f'**{m["model"]}, {m["kind"].replace("_", " ")}** (flicker '
                      f'{m["flicker"]:.4f}, {m["time_s"]:.2f} s into the drive)', '',
                      f'![{m["model"]} {m["kind"]}]({m["file"]})', '']
    return '\n'.join(lines)


def write_report(result: dict, out, video=None) -> dict:
    """
    Write the whole report into directory ``out``; returns the summary written (metrics.json).

    ``video``: the drive's :class:`~stkd_ros.report.video.VideoInfo`, a file in ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(result)
    _plot_flicker(result, out / 'flicker_over_time.png')
    _plot_per_class(summary, result, out / 'per_class.png')
    _plot_latency(result, out / 'latency.png')
    summary['moments'] = _moments(result, out)
    if video is not None:
        summary['video'] = {**video.to_dict(), 'file': Path(video.path).name}
        del summary['video']['path']   # the folder travels: the page names the file
    (out / 'metrics.json').write_text(json.dumps(summary, indent=2))
    (out / 'report.md').write_text(_markdown(summary))
    write_page(out, summary)
    return summary
