"""
Files written whole: into a temporary file beside the target, then renamed over it.

Several processes fill one folder (data-loader workers, `stkd label` ranks on machines
sharing a file system): the temporary file's name carries the host and the process, so no two
writers share one, and a reader sees the old file or the new one, never half of either.
"""

from contextlib import contextmanager
import fcntl
import glob
import os
from pathlib import Path
import socket


def temporary_beside(path) -> Path:
    """``dir/stem.HOST.PID.tmp.suffix``: the temporary file for ``path``, this process's own."""
    path = Path(path)
    return path.with_name(f'{path.stem}.{socket.gethostname()}.{os.getpid()}.tmp{path.suffix}')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True   # another user's process
    return True


def remove_stale_temporaries(path) -> list:
    """
    Remove the temporary files for ``path`` that dead processes of this host left behind.

    A killed writer's file is garbage once its process is gone; a live writer's (a rank
    filling the same folder) is left alone, and so is any other host's, whose processes
    cannot be asked. Returns the paths removed.
    """
    path = Path(path)
    prefix = f'{path.stem}.{socket.gethostname()}.'
    removed = []
    for tmp in path.parent.glob(f'{glob.escape(prefix)}*.tmp{glob.escape(path.suffix)}'):
        pid = tmp.name[len(prefix):-len(f'.tmp{path.suffix}')]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextmanager
def locked_beside(path):
    """
    Hold ``path.lock`` (beside ``path``) exclusively while the block runs: one writer a host.

    The lock file stays: deleting it would let a process waiting on it lock a file that a
    newcomer no longer sees. The kernel drops the lock when its holder ends, killed or not.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + '.lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
