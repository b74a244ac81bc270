"""
Output folders that appear only when whole.

eval-bag's report and annotated bag are written under a temporary name beside their
destination and renamed into place when complete, so a failure part way (a corrupt message,
a model that raises, Ctrl-C) leaves no folder that looks like a finished one.
"""

from contextlib import contextmanager
import os
from pathlib import Path
import shutil
import tempfile
from typing import Callable, Optional


def check_destination(final, replaceable: Optional[Callable[[Path], bool]] = None):
    """
    Refuse ``final`` where it exists and is not ``replaceable`` (an earlier output of its kind).

    Called before the work starts, so that a long pass does not end in this error.
    """
    final = Path(final)
    if not final.exists() or (replaceable and final.is_dir() and replaceable(final)):
        return
    if replaceable is None:
        raise FileExistsError(f'{final} already exists; choose a new path')
    raise FileExistsError(f'{final} already exists and is not an earlier output of this '
                          f'command; choose a new path')


@contextmanager
def staged(final, replaceable: Optional[Callable[[Path], bool]] = None):
    """
    Yield a path to write a folder to; on success it becomes ``final``, on failure it is gone.

    The yielded path does not exist yet and has ``final``'s name (rosbags names the bag's
    file after its folder). An existing ``final`` that is ``replaceable`` is replaced.
    """
    final = Path(final)
    check_destination(final, replaceable)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f'.{final.name}.partial-', dir=final.parent))
    try:
        yield work / final.name
        check_destination(final, replaceable)
        if final.exists():
            os.rename(final, work / 'previous')
        os.rename(work / final.name, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
