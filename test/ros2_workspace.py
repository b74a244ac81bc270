"""
A colcon workspace with this package in src/, built as a ROS 2 user builds it.

The launch tests run what `colcon build` installs (the launch files, config and scripts from
share/ and lib/), not the editable checkout.
"""

import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'stkd_ros'


def readme_ros2_blocks() -> list:
    """Each ```bash block of the README's ROS 2 section: its commands, continuations joined."""
    readme = (ROOT / 'README.md').read_text()
    section = readme[readme.index('\n## ROS 2\n'):]
    section = section[:section.index('\n## ', 1)]
    blocks = re.findall(r'```bash\n(.*?)```', section, re.S)
    return [[c.strip() for c in re.sub(r'\\\n\s*', '', b).splitlines() if c.strip()]
            for b in blocks]


def _package_files():
    """Tracked and new files of the checkout (no .venv, runs/, build outputs)."""
    out = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


def copy_package(dest: Path) -> Path:
    """Copy the checkout's files (as a clone has them, plus new ones) into dest; return dest."""
    for name in _package_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return dest


def build_workspace(ws: Path) -> Path:
    """Copy the package into ws/src/stkd_ros and `colcon build` it; return the install prefix."""
    copy_package(ws / 'src' / PACKAGE)
    subprocess.run([str(Path(sys.executable).parent / 'colcon'), 'build'], cwd=ws, check=True,
                   capture_output=True, text=True)
    return ws / 'install' / PACKAGE


def installed_environment(prefix: Path) -> dict:
    """Return what `source install/setup.sh` sets for this package (and the venv's PATH)."""
    site = prefix / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}' \
        / 'site-packages'
    return {'AMENT_PREFIX_PATH': str(prefix), 'PYTHONPATH': str(site),
            'PATH': f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}'}


def quickstart_files(checkout: Path) -> dict:
    """
    Write small stand-ins for the files the README's quickstart writes under ``checkout``.

    runs/d/model.safetensors (an untrained student), runs/d/model.onnx (`stkd export`) and
    runs/drive/bag (`stkd synth --bag`).
    """
    import torch

    from stkd_ros.model_file import save_model_file
    from stkd_ros.models import build_model
    runs = checkout / 'runs'
    model = runs / 'd' / 'model.safetensors'
    model.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_model_file(model, build_model('bisenet_lite', 11).eval(), {
        'arch': 'bisenet_lite', 'arch_args': {}, 'num_classes': 11,
        'classes': [str(i) for i in range(11)], 'palette': [[20 * i, 0, 0] for i in range(11)],
        'input_size': [64, 128], 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]})
    stkd = [sys.executable, '-m', 'stkd_ros.cli']
    subprocess.run(stkd + ['export', '--model', str(model), '--onnx', str(model.with_suffix(
        '.onnx'))], check=True, capture_output=True)
    subprocess.run(stkd + ['synth', '--out', str(runs / 'drive'), '--clips', '1', '--frames',
                           '24', '--size', '96x192', '--seed', '777', '--bag'],
                   check=True, capture_output=True)
    return {'model': model, 'onnx': model.with_suffix('.onnx'), 'bag': runs / 'drive' / 'bag',
            'frames': 24}
