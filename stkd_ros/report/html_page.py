"""
Pieces of a self-contained HTML page: escaped text, tables, figures, a video, the page.

The page loads nothing from the network: style and script are inline, and images and video
are files beside it, so the folder that holds it can be zipped and sent.
"""

from dataclasses import dataclass
import html
import os
from pathlib import Path
from typing import Sequence

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 1.2em 1.5em 3em; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; background: #fff; }
th, td { border: 1px solid #d0d0d0; padding: .3em .7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #eef1f5; }
.meta, .note { color: #555; }
.warning { background: #fff4d6; border-left: 4px solid #e0a800; padding: .5em .8em; }
figure { margin: 1em 0; }
figure img, video { max-width: 100%; height: auto; border: 1px solid #ccc; background: #000; }
figcaption { color: #444; font-size: .93em; margin-top: .3em; }
button { font: inherit; cursor: pointer; }
"""

# Buttons with data-seek show that moment of the video (paused, so the frame can be looked at).
_SCRIPT = """
document.querySelectorAll('button[data-seek]').forEach(function (button) {
  button.addEventListener('click', function () {
    var video = document.getElementById(button.dataset.video);
    video.pause();
    video.currentTime = parseFloat(button.dataset.seek);
    video.scrollIntoView({block: 'center'});
  });
});
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Section:
    """A titled table with a line of explanation: what a caller adds to a page."""

    title: str
    text: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]

    def render(self) -> str:
        return (f'<h2>{esc(self.title)}</h2>\n<p class="note">{esc(self.text)}</p>\n'
                + table(self.headers, self.rows))


def table(headers, rows) -> str:
    """Return an HTML table of already formatted cells (escaped here)."""
    head = ''.join(f'<th>{esc(h)}</th>' for h in headers)
    body = '\n'.join('<tr>' + ''.join(f'<td>{esc(c)}</td>' for c in row) + '</tr>'
                     for row in rows)
    return f'<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n'


def figure(src: str, alt: str, caption: str = '') -> str:
    """Show an image file beside the page, with its caption."""
    text = f'<figcaption>{esc(caption)}</figcaption>' if caption else ''
    return f'<figure><img src="{esc(src)}" alt="{esc(alt)}">{text}</figure>\n'


def video(src: str, element_id: str, width: int, height: int, caption: str = '') -> str:
    """Show a playable video file beside the page (H.264 MP4)."""
    text = f'<figcaption>{esc(caption)}</figcaption>' if caption else ''
    return (f'<figure><video id="{esc(element_id)}" controls preload="metadata" '
            f'width="{width}" height="{height}" src="{esc(src)}"></video>{text}</figure>\n')


def seek_button(element_id: str, seconds: float, label: str) -> str:
    """Return a button that shows the video ``element_id`` at ``seconds``."""
    return (f'<button type="button" data-video="{esc(element_id)}" '
            f'data-seek="{seconds:.3f}">{esc(label)}</button>')


def page(title: str, body: str) -> str:
    """Return a whole HTML document (no favicon request, no external resource)."""
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="icon" href="data:,">\n<title>{esc(title)}</title>\n'
            f'<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n'
            f'<script>{_SCRIPT}</script>\n</body>\n</html>\n')


def write_page(path, title: str, body: str) -> Path:
    """Write the page whole (a temporary file, then a rename): a reader never sees half."""
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.partial')
    tmp.write_text(page(title, body), encoding='utf-8')
    os.replace(tmp, path)
    return path
