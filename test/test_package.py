"""The ROS 2 package installs the way colcon installs an ament_python package."""

import os
from pathlib import Path
import re
import subprocess
import sys
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_ament_python():
    root = ElementTree.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'stkd_ros'
    assert root.find('export/build_type').text == 'ament_python'
    exec_deps = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs'} <= exec_deps
    assert {'ament_flake8', 'ament_pep257'} <= {e.text for e in root.findall('test_depend')}


def test_setup_install_lays_out_share_and_lib_like_colcon(tmp_path):
    """`setup.py install` (what colcon runs) puts the marker, package.xml and scripts in place."""
    prefix = tmp_path / 'install'
    subprocess.run([sys.executable, 'setup.py', '-q', 'build', '--build-base',
                    str(tmp_path / 'build'), 'install', '--prefix', str(prefix),
                    '--single-version-externally-managed', '--record',
                    str(tmp_path / 'record.txt')], cwd=ROOT, check=True, capture_output=True)
    share = prefix / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'stkd_ros').is_file()
    assert (share / 'stkd_ros' / 'package.xml').is_file()
    for launch in (ROOT / 'launch').glob('*.launch.py'):
        assert (share / 'stkd_ros' / 'launch' / launch.name).is_file()
    for config in (ROOT / 'config').glob('*.yaml'):
        assert (share / 'stkd_ros' / 'config' / config.name).is_file()
    assert (prefix / 'lib' / 'stkd_ros' / 'stkd').is_file()   # where `ros2 run` looks


# `colcon test` on a workspace runs the whole suite; here it runs a small selection (what the
# suite already runs in full would double its time): enough to show that colcon finds pytest
# through setup.py and that `colcon test-result` counts every test that pytest ran.
COLCON_TEST_SELECTION = ['test/test_layout.py', 'test/test_metrics.py']


@pytest.mark.ros
@pytest.mark.slow
def test_colcon_test_runs_pytest_and_test_result_counts_every_test(ros2_workspace):
    """The README's `colcon test` and `colcon test-result --verbose` on the fresh workspace."""
    src = ros2_workspace / 'src' / 'stkd_ros'
    # A run of this suite under colcon test has colcon's options for itself in PYTEST_ADDOPTS.
    env = {k: v for k, v in os.environ.items() if k != 'PYTEST_ADDOPTS'}
    collected = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', '-q',
                                '-p', 'no:cacheprovider', *COLCON_TEST_SELECTION], cwd=src,
                               env=env, capture_output=True, text=True)
    expected = int(re.search(r'^(\d+) tests? collected', collected.stdout, re.M).group(1))
    colcon = str(Path(sys.executable).parent / 'colcon')
    test = subprocess.run([colcon, 'test', '--pytest-args', *COLCON_TEST_SELECTION],
                          cwd=ros2_workspace, env=env, capture_output=True, text=True,
                          timeout=600)
    assert test.returncode == 0, test.stdout + test.stderr
    result = subprocess.run([colcon, 'test-result', '--verbose'], cwd=ros2_workspace, env=env,
                            capture_output=True, text=True)
    summary = re.search(r'^Summary: (\d+) tests, (\d+) errors, (\d+) failures, (\d+) skipped',
                        result.stdout, re.M)
    assert summary, result.stdout + result.stderr
    print(summary.group(0))
    tests, errors, failures, skipped = map(int, summary.groups())
    assert tests > 0, f'colcon test ran no test: {summary.group(0)}'
    assert (tests, errors, failures, skipped) == (expected, 0, 0, 0), summary.group(0)
    assert result.returncode == 0, result.stdout
