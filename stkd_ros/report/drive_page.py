"""
eval-bag's report.html: the table, the drive as video, the plots, the moments to look at.

Rendered from the summary that metrics.json holds (with the report's ``video`` and
``moments`` entries), so that a caller can render it again with sections of its own (the
demo adds its held-out table). Everything it shows is a file in the report's folder.
"""

from pathlib import Path

from stkd_ros.report import html_page as html
from stkd_ros.report.drive_table import (drive_line, drive_notes, number, STABILITY_NOTE,
                                         SUMMARY_HEADERS, summary_rows)

PAGE = 'report.html'
VIDEO_ID = 'drive'

_VIDEO_CAPTION = (
    "Top row: the frame, then each model's classes over it, in its palette. Bottom row: the "
    'classes, then for each model the pixels whose class changed from the previous frame '
    'along the flow (red): what flicker counts. Darker pixels are not counted (occluded, or '
    "carried out of the image). Each caption has the model's flicker so far, or the share "
    'of pixels that changed at that frame.')
_PLOTS = (('flicker_over_time.png', 'Flicker over the drive',
           "Each step's own flicker; the legend has the drive's figure."),
          ('per_class.png', 'Per class', ''),
          ('latency.png', 'Latency', 'Inference time per frame on the machine that ran it.'))


def _moments(summary: dict) -> str:
    moments = summary.get('moments') or []
    if not moments:
        return ''
    parts = ['<h2>Most and least stable moments</h2>\n<p class="note">Each image: the frame, '
             "then every model's classes over it, at the step where the named model "
             'flickers least or most.</p>\n']
    for m in moments:
        title = f'{m["model"]}, {m["kind"].replace("_", " ")} (flicker {number(m["flicker"])})'
        button = ''
        if summary.get('video'):
            button = ' ' + html.seek_button(VIDEO_ID, m['time_s'],
                                            f'show in the video ({m["time_s"]:.2f} s)')
        parts.append(f'<h3>{html.esc(title)}{button}</h3>\n'
                     + html.figure(m['file'], title))
    return ''.join(parts)


def _video(summary: dict) -> str:
    info = summary.get('video')
    if not info:
        return ''
    caption = (f'{_VIDEO_CAPTION} {info["frames"]} frames, {info["duration_s"]:.2f} s, '
               f'H.264, {info["size_bytes"] / 1e6:.2f} MB.')
    return ('<h2>The drive</h2>\n'
            + html.video(info['file'], VIDEO_ID, info['width'], info['height'], caption))


def write_page(out, summary: dict, extra=()) -> Path:
    """
    Write ``out``/report.html from ``summary``; returns its path.

    ``extra``: :class:`stkd_ros.report.html_page.Section` s shown after the summary table.
    """
    title = f'eval-bag: {Path(summary["bag"]).name}'
    body = [f'<h1>{html.esc(title)}</h1>\n',
            f'<p class="meta">{html.esc(drive_line(summary))}</p>\n']
    body += [f'<p class="warning">{html.esc(n)}</p>\n' for n in drive_notes(summary)]
    body += ['<h2>Summary</h2>\n', html.table(SUMMARY_HEADERS, summary_rows(summary)),
             f'<p class="note">{html.esc(STABILITY_NOTE.format(flow=summary["stability_flow"]))}'
             f'</p>\n']
    body += [section.render() for section in extra]
    body.append(_video(summary))
    for file, heading, caption in _PLOTS:
        if (Path(out) / file).is_file():
            body.append(f'<h2>{html.esc(heading)}</h2>\n' + html.figure(file, heading, caption))
    body.append(_moments(summary))
    return html.write_page(Path(out) / PAGE, title, ''.join(body))
