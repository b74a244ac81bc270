"""
Files written whole: into a temporary file beside the target, then renamed over it.

Several processes fill one folder (data-loader workers, `stkd label` ranks on machines
sharing a file system): the temporary file's name carries the host and the process, so no two
writers share one, and a reader sees the old file or the new one, never half of either.
"""

import os
from pathlib import Path
import socket


def temporary_beside(path) -> Path:
    """``dir/stem.HOST.PID.tmp.suffix``: the temporary file for ``path``, this process's own."""
    path = Path(path)
    return path.with_name(f'{path.stem}.{socket.gethostname()}.{os.getpid()}.tmp{path.suffix}')
