"""Where training writes what it measures: metrics.csv (step, tag, value) and TensorBoard."""

import csv
from pathlib import Path

import numpy as np


class Logbook:
    """
    Append scalars to ``metrics.csv`` and TensorBoard.

    On resume, rows past the checkpoint are dropped so the file reads like one unbroken run.
    """

    def __init__(self, out_dir: Path, resume_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(out_dir) / 'metrics.csv'
        self.writer = None
        if not enabled:
            return
        rows = []
        if self.path.is_file() and resume_step > 0:
            with open(self.path, newline='') as f:
                rows = [r for r in csv.DictReader(f) if int(r['step']) <= resume_step]
        with open(self.path, 'w', newline='') as f:
            w = csv.DictWriter(f, ['step', 'tag', 'value'])
            w.writeheader()
            w.writerows(rows)
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(out_dir), purge_step=resume_step or None)

    def scalars(self, step: int, values: dict, prefix: str):
        if not self.enabled:
            return
        with open(self.path, 'a', newline='') as f:
            w = csv.writer(f)
            for tag, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    w.writerow([step, f'{prefix}/{tag}', f'{float(value):.6g}'])
                    self.writer.add_scalar(f'{prefix}/{tag}', float(value), step)

    def image(self, step: int, tag: str, rgb: np.ndarray):
        if self.enabled:
            self.writer.add_image(tag, rgb, step, dataformats='HWC')

    def close(self):
        if self.writer is not None:
            self.writer.close()
