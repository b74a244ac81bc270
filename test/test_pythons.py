"""
The package under the Python of each active ROS 2 distribution that can be installed here.

Humble runs Python 3.10, Jazzy and Kilted 3.12, Lyrical (Ubuntu 26.04) 3.14; .venv has 3.11.
`.ci/pythons.sh DEST` installs what this machine can have (it says why, and what it cannot):
CPython 3.10 and 3.12 compiled to WebAssembly (Pyodide, run by Node.js), which byte-compile
the package, and Debian sid's CPython 3.14 in a chroot, with Debian's torch, which
byte-compiles it and runs its ROS-free tests. Without DEST (``STKD_PYTHONS``, default
~/.cache/stkd_ros/pythons) these tests skip, with the command; in CI (``CI`` set) they fail.
"""

import os
from pathlib import Path
import shutil
import subprocess

import pytest
from ros2_workspace import copy_package

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DEFAULT = Path.home() / '.cache' / 'stkd_ros' / 'pythons'
PYTHONS = Path(os.environ.get('STKD_PYTHONS', DEFAULT))
SOURCES = ['stkd_ros', 'launch', 'test', 'bench', 'experiments', 'setup.py']
# The test files that need no ROS, less their `ros` and `slow` tests, under Lyrical's Python
# with Debian's own torch (about a minute and a half here). Left out: the training and
# distillation files (minutes), test_experiments.py (needs the git history), test_rosdep.py
# (needs ../shared), the ROS and linter files, and this one.
# test_eval_bag.py is left out too: eval-bag's report video needs PyAV, which .ci/pythons.sh
# does not install in the chroot yet.
ROS_FREE = ['test_camvid.py', 'test_cityscapes.py', 'test_cli_synth.py',
            'test_export_inference.py', 'test_flow.py', 'test_launch.py', 'test_layout.py',
            'test_losses.py', 'test_metrics.py', 'test_model_file.py', 'test_models.py',
            'test_node_core.py', 'test_package.py', 'test_synthetic.py', 'test_temporal.py',
            'test_transforms.py']


def _installed(path: Path) -> Path:
    if not path.exists():
        reason = f'{path} is missing: install the Pythons with .ci/pythons.sh {PYTHONS}'
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def pyodide_compile(version: str, src: Path, paths: list) -> subprocess.CompletedProcess:
    """Byte-compile ``paths`` (relative to src) with Pyodide's CPython ``version``."""
    pyodide = _installed(PYTHONS / 'pyodide' / 'node_modules' / f'py{version.replace(".", "")}')
    return subprocess.run([shutil.which('node'), str(HERE / 'pyodide_compile.js'), str(pyodide),
                           str(src), *paths], capture_output=True, text=True, timeout=300)


def in_debian_sid(src: Path, script: str) -> subprocess.CompletedProcess:
    """Run ``script`` with sh in the Debian sid chroot, its venv first on PATH, src at /src."""
    root = _installed(PYTHONS / 'debian-sid' / '.stamp').parent
    if os.geteuid() != 0:
        pytest.skip('the Debian sid chroot needs root')
    # A private mount namespace: the bind mounts vanish with the process.
    mounts = ('mount --bind "$1" "$2/src"; mount -t proc proc "$2/proc"; '
              'mount --rbind /dev "$2/dev"; exec chroot "$2" env -i HOME=/tmp '
              'PATH=/opt/venv/bin:/usr/bin:/bin PYTHONPYCACHEPREFIX=/tmp/pyc sh -ec "$3"')
    return subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-ec', mounts,
                           'sh', str(src), str(root), script],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize('version', ['3.10', '3.12'])
def test_package_byte_compiles_under_humble_and_jazzy_python(version):
    proc = pyodide_compile(version, ROOT, SOURCES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f'Python {version}.'), proc.stdout


def test_byte_compiling_fails_on_newer_syntax_and_on_syntax_warnings(tmp_path):
    """The check can fail: 3.12's `type` statement under 3.10, an invalid escape under 3.12."""
    (tmp_path / 'alias.py').write_text('type Alias = int\n')
    (tmp_path / 'escape.py').write_text('pattern = "\\d"\n')
    proc = pyodide_compile('3.10', tmp_path, ['alias.py'])
    assert proc.returncode == 1 and 'alias.py' in proc.stdout, proc.stdout + proc.stderr
    proc = pyodide_compile('3.12', tmp_path, ['escape.py'])
    assert proc.returncode == 1 and 'invalid escape' in proc.stdout, proc.stdout + proc.stderr


def test_lyrical_python_compiles_the_package_and_runs_the_ros_free_tests(tmp_path):
    src = copy_package(tmp_path / 'src')   # test_package builds in place: not in the checkout
    tests = ' '.join(f'test/{name}' for name in ROS_FREE)
    proc = in_debian_sid(src, f'cd /src; python --version; '
                              f'python -W error -m compileall -q {" ".join(SOURCES)}; '
                              f'python -m pytest -q -p no:cacheprovider '
                              f'-m "not ros and not slow" {tests}')
    out = proc.stdout + proc.stderr
    print(out[-3000:])
    assert proc.returncode == 0, out[-8000:]
    assert proc.stdout.startswith('Python 3.14.'), out
    assert ' passed' in out and 'skipped' not in out, out
