"""Shared by the benchmarks: print a table and write the same rows as JSON."""

import json
import os
from pathlib import Path
import platform
import time

import torch


def machine() -> dict:
    return {'cpu_count': os.cpu_count(), 'platform': platform.platform(),
            'python': platform.python_version(), 'torch': torch.__version__,
            'torch_threads': torch.get_num_threads(),
            'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            'date': time.strftime('%Y-%m-%d %H:%M:%S')}


def card(device: str) -> str:
    """Name what a torch ``device`` string runs on: 'cpu', or the GPU's name."""
    if device.startswith('cuda') and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return device


def emit(name: str, rows: list, columns: list, out_dir: str = None) -> Path:
    """Print ``rows`` (dicts) as a Markdown table and write them to ``<out_dir>/<name>.json``."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print('| ' + ' | '.join(c.ljust(w) for c, w in zip(columns, widths)) + ' |')
    print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')
    for r in rows:
        print('| ' + ' | '.join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths))
              + ' |')
    out = Path(out_dir or Path(__file__).parent / 'results')
    out.mkdir(parents=True, exist_ok=True)
    path = out / f'{name}.json'
    path.write_text(json.dumps({'benchmark': name, 'machine': machine(), 'rows': rows},
                               indent=2))
    print(f'\nwrote {path}')
    return path


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def _fmt(value) -> str:
    if isinstance(value, float):
        return f'{value:.3g}' if abs(value) < 100 else f'{value:.1f}'
    return '' if value is None else str(value)
