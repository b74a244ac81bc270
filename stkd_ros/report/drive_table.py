"""What report.md and report.html both say: the summary table, its note, notes on the drive."""

import math

#: What the stability columns count, and which to read first, under every report's table.
STABILITY_NOTE = (
    'Flicker and TC count the same pixels of each pair of consecutive frames: those the flow '
    '({flow}) carries inside the image and the occlusion check finds in both frames, over the '
    'whole drive. Flicker is the share of them whose class changed; read it first: TC is their '
    'mIoU, averaged over classes, so a class predicted in a few pixels moves it. TC (ETC) '
    'counts occluded pixels too, as ETC (Liu et al. 2020) published it, for comparison with '
    'the literature. All are label-free.')

SUMMARY_HEADERS = ('model', 'flicker', 'flicker (p95 of steps)', 'TC', 'TC (ETC)', 'mIoU',
                   'latency p50 / p95 [ms]')


def number(value, digits: int = 4) -> str:
    """Format a figure, or 'n/a' where there is none (NaN: no pair of frames, no labels)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 'n/a'
    return f'{value:.{digits}f}'


def summary_rows(summary: dict) -> list:
    """Return one row of formatted cells per model, in :data:`SUMMARY_HEADERS`' order."""
    rows = []
    for name, m in summary['models'].items():
        lat = m['latency_ms']
        miou = number(m['miou']) if 'miou' in m else 'n/a (no labels)'
        rows.append([name, number(m['flicker']), number(m['flicker_p95']), number(m['tc']),
                     number(m['tc_etc']), miou,
                     f'{number(lat["p50"], 1)} / {number(lat["p95"], 1)}'])
    return rows


def drive_line(summary: dict) -> str:
    """Say the topic, frames, time and rate of the drive, and which masks were scored."""
    rate = f' at {summary["fps"]:.2f} fps' if summary.get('fps') else ''
    fusion = summary['temporal_fusion']
    masks = ('each frame segmented alone (temporal fusion: off)' if fusion == 'off' else
             "each model's per-frame masks (its name) and, from the same forward pass, its "
             f'fused masks, the drive one stream (its name + fusion; temporal fusion: on, '
             f'{fusion})')
    return (f'Topic {summary["topic"]}: {summary["frames"]} frames over '
            f'{summary["duration_s"]:.2f} s{rate} (header stamps)'
            f'{", labeled" if summary["labeled"] else ""}; {summary["rejected_frames"]} '
            f'frames could not be decoded. Masks scored: {masks}.')


def drive_notes(summary: dict) -> list:
    """List what a reader must know before trusting the table: no pairs, lost frames, labels."""
    notes = []
    if summary['frames'] < 2:
        notes.append('The drive has one frame: there is no pair of frames, so flicker and TC '
                     'are not measured (n/a) and the video shows that one frame.')
    if summary['rejected_frames']:
        notes.append(f'{summary["rejected_frames"]} frames of the topic could not be decoded '
                     f'and are left out of every figure and of the video.')
    if summary.get('unmatched_labels'):
        notes.append(f'{summary["unmatched_labels"]} labels found no frame of their stamp '
                     f'near them in the bag and are left out of mIoU.')
    if not summary['labeled']:
        notes.append('No labels were read (no --label-topic, or none on it): mIoU is not '
                     'measured.')
    return notes
