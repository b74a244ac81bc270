"""
A protocol's ledger: the JSON of its finished runs, which its tables are made from.

It outlives the machine: each finished run goes into it at once (committed with the tree), and
a protocol started again, in another session on another machine whose ``runs/`` is gone,
keeps every run the ledger holds with the same command (the folders it names aside) and, for
a run taught by a teacher or a label store, the same file by SHA-256, instead of training it
again. Several protocol processes may record into one ledger: each merges the others' runs
under a lock before it writes.
"""

import json
import os
from pathlib import Path
import shlex

from stkd_ros.atomic_write import locked_beside

#: Options naming where a run's files lie, not what it trains (the files go by their hash).
PATH_OPTIONS = ('--out', '--teacher', '--labels')


def same_run(recorded: str, planned: str, retired=()) -> bool:
    """
    Whether two shown commands train the same run: equal but for the path options.

    ``retired``: words of a recorded command that name a setting removed since, with the
    value that trained as its absence does; they are left out of the comparison.
    """
    def essential(text):
        words = shlex.split(text)
        return [w for i, w in enumerate(words)
                if w not in PATH_OPTIONS and (i == 0 or words[i - 1] not in PATH_OPTIONS)
                and w not in retired]
    return essential(recorded) == essential(planned)


class Ledger:
    """
    The runs of one protocol in ``path``: ``{..header, 'rows': {row: {'seeds': {seed: run}}}}``.

    ``keep(row, seed, run, recorded)`` says whether a run of the JSON ``recorded`` is one this
    protocol would train the same way; ``order`` lists the rows as the tables show them.
    """

    def __init__(self, path, header: dict, keep, order):
        self.path, self.header, self.keep, self.order = Path(path), header, keep, list(order)

    def kept(self, quiet: bool = False) -> dict:
        """Return {row: {seed: run}} of the recorded runs that ``keep`` accepts."""
        if not self.path.is_file():
            return {}
        kept, recorded = {}, json.loads(self.path.read_text())
        for row, entry in recorded.get('rows', {}).items():
            for seed, run in entry['seeds'].items():
                if self.keep(row, seed, run, recorded):
                    kept.setdefault(row, {})[seed] = run
                elif not quiet:
                    print(f'{self.path.name}: {row}, seed {seed} was recorded with another '
                          f'command or teacher; not reused')
        return kept

    def in_order(self, scores: dict) -> dict:
        """Return the rows that have runs, in table order, with their seeds in order."""
        return {row: dict(sorted(scores[row].items(), key=lambda kv: int(kv[0])))
                for row in self.order if scores.get(row)}

    def write(self, scores: dict):
        """Write ``scores`` whole, atomically: a reader never sees half a file."""
        rows = {row: {'seeds': seeds} for row, seeds in self.in_order(scores).items()}
        tmp = self.path.with_name(self.path.name + '.tmp')
        tmp.write_text(json.dumps({**self.header, 'rows': rows}, indent=2))
        os.replace(tmp, self.path)

    def record(self, scores: dict):
        """
        Write ``scores`` into the ledger, and keep what others wrote there.

        Runs another protocol process recorded meanwhile (the same protocol, other rows) are
        merged in, not overwritten.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked_beside(self.path):
            for row, seeds in self.kept(quiet=True).items():
                for seed, run in seeds.items():
                    scores.setdefault(row, {}).setdefault(seed, run)
            self.write(scores)
