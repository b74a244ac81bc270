"""
`rosdep install`, a ROS 2 user's first command in a workspace, on every active distribution.

The real rosdep (requirements-dev.txt) runs offline: its rules and the distributions' package
lists come from ../shared/rosdistro-snapshot (ros/rosdistro of 2026-08-22; see its README).
Without the snapshot (a checkout inside a user's workspace) these tests skip; in CI they fail.
"""

import ast
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
from xml.etree import ElementTree

import pytest
from ros2_workspace import readme_ros2_blocks

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT.parent / 'shared' / 'rosdistro-snapshot'
# The active ROS 2 distributions of the snapshot and the Ubuntu release each targets.
DISTRIBUTIONS = {'humble': 'jammy', 'jazzy': 'noble', 'kilted': 'noble', 'lyrical': 'resolute'}
# What the package imports -> how it is installed on a ROS 2 machine: a rosdep key of
# package.xml or, for what has no rosdep rule, a line of requirements-ros.txt.
INSTALLED_BY = {
    'rclpy': 'rclpy', 'rcl_interfaces': 'rcl_interfaces', 'sensor_msgs': 'sensor_msgs',
    'std_msgs': 'std_msgs', 'diagnostic_msgs': 'diagnostic_msgs',
    'ament_index_python': 'ament_index_python', 'launch': 'launch', 'launch_ros': 'launch_ros',
    'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'yaml': 'python3-yaml',
    'torch': 'python3-torch', 'torchvision': 'python3-torchvision', 'timm': 'python3-timm-pip',
    'onnxruntime': 'python3-onnxruntime-pip', 'rosbags': 'python3-rosbags-pip',
    'tqdm': 'python3-tqdm', 'matplotlib': 'python3-matplotlib',
    'safetensors': 'requirements-ros.txt', 'onnx': 'requirements-ros.txt',
    'cityscapesscripts': 'requirements-ros.txt', 'av': 'requirements-ros.txt',
    'openvino': 'requirements-ros.txt',
    'cv_bridge': None,   # used when installed (image_msgs.py), not needed
}


def package_keys() -> list:
    root = ElementTree.parse(ROOT / 'package.xml').getroot()
    return [e.text.strip() for e in root if e.tag.endswith('depend')]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """Make a workspace whose src/ holds this package (rosdep reads only package.xml)."""
    ws = tmp_path_factory.mktemp('rosdep_ws')
    (ws / 'src' / 'stkd_ros').mkdir(parents=True)
    shutil.copy2(ROOT / 'package.xml', ws / 'src' / 'stkd_ros' / 'package.xml')
    return ws


@pytest.fixture(scope='module')
def rosdep(tmp_path_factory):
    """Run the real rosdep against the snapshot; `rosdep update` done once."""
    if not SNAPSHOT.is_dir():
        reason = f'{SNAPSHOT} is missing (a clone with ../shared beside it has it)'
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp('rosdep_home')
    (home / 'sources').mkdir()
    rules = [SNAPSHOT / 'rosdep' / name for name in ('base.yaml', 'python.yaml')]
    (home / 'sources' / '20-snapshot.list').write_text(''.join(
        f'yaml {path.as_uri()}\n' for path in rules))
    env = {**os.environ, 'ROSDEP_SOURCE_PATH': str(home / 'sources'), 'ROS_HOME': str(home),
           'ROSDISTRO_INDEX_URL': (SNAPSHOT / 'index-v4.yaml').as_uri(),
           'ROS_PYTHON_VERSION': '3'}
    executable = Path(sys.executable).parent / 'rosdep'

    def run(*args, cwd=None):
        return subprocess.run([str(executable), *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)

    proc = run('update')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run


def test_rosdep_reads_every_key_of_package_xml(rosdep, workspace):
    proc = rosdep('keys', '--from-paths', 'src', '--ignore-src', cwd=workspace)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == sorted(set(package_keys()))


@pytest.mark.parametrize('distro', DISTRIBUTIONS)
def test_every_key_resolves(rosdep, distro):
    """One `rosdep resolve` of all keys; each key it cannot resolve is named."""
    codename = DISTRIBUTIONS[distro]
    proc = rosdep('resolve', '--rosdistro', distro, '--os', f'ubuntu:{codename}',
                  *package_keys())
    failed = re.findall(r"^ERROR: no rosdep rule for '([^']+)'", proc.stderr, re.M)
    assert not failed, (f'{distro} (ubuntu:{codename}): no rosdep rule for '
                        f'{", ".join(failed)}')
    assert proc.returncode == 0, f'{distro} (ubuntu:{codename}): {proc.stderr}'


@pytest.mark.parametrize('distro', DISTRIBUTIONS)
def test_readme_rosdep_install_resolves_the_workspace(rosdep, workspace, distro):
    """
    The README's command as written, for one distribution; it prints what it would install.

    --reinstall lists every package instead of asking pip and dpkg what this machine has
    (pip's answer takes seconds, and this machine is no Ubuntu).
    """
    command = readme_ros2_blocks()[0][0].split()
    assert command[:2] == ['rosdep', 'install'], command
    codename = DISTRIBUTIONS[distro]
    proc = rosdep(*command[1:], '--simulate', '--reinstall', '--rosdistro', distro, '--os',
                  f'ubuntu:{codename}', cwd=workspace)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{distro} (ubuntu:{codename}): {out}'
    for package in (f'ros-{distro}-rclpy', 'python3-torch', 'pip3 install -U -I timm'):
        assert package in out, out


def test_what_rosdep_cannot_install_is_pinned_in_requirements_ros():
    """requirements-ros.txt holds requirements.txt's pins of what package.xml cannot name."""
    pins = set((ROOT / 'requirements.txt').read_text().split())
    ros = [line.split('#')[0].strip() for line in (ROOT / 'requirements-ros.txt').open()]
    ros = [line for line in ros if line]
    assert ros and all(line in pins for line in ros), ros
    names = {line.split('==')[0] for line in ros}
    wanted = {name for name, how in INSTALLED_BY.items() if how == 'requirements-ros.txt'}
    assert names == wanted, names ^ wanted


def test_every_import_is_installed_by_rosdep_or_requirements_ros():
    """A third-party import of the package or its launch files needs a key or a pip line."""
    imported = set()
    for path in [*(ROOT / 'stkd_ros').rglob('*.py'), *(ROOT / 'launch').glob('*.py')]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(a.name.split('.')[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split('.')[0])
    third_party = imported - set(sys.stdlib_module_names) - {'stkd_ros'}
    unknown = sorted(third_party - set(INSTALLED_BY))
    assert not unknown, f'imported, but in neither package.xml nor requirements-ros.txt: {unknown}'
    keys = set(package_keys())
    missing = sorted(how for how in INSTALLED_BY.values()
                     if how and how != 'requirements-ros.txt' and how not in keys)
    assert not missing, f'not in package.xml: {missing}'
