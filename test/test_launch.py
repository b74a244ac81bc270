"""
The launch files, run for real on a colcon install.

Launch tests (launch_testing), and `ros2 launch` itself for what only the command shows (how
it ends when a node fails).

The launch tests live in test/launch_tests/ and run through the `launch_test` command, as
`add_launch_test` runs them in a ROS 2 CMake package (launch_testing's pytest plugin does
not load under pytest 9). Without the ROS 2 launch tools they skip, with the reason.
"""

import os
from pathlib import Path
import shutil
import subprocess
import time

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent


def _launch_test(name, *launch_args, timeout=420):
    """Run one launch test file; its unittest report is the failure message."""
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(HERE), os.environ['PYTHONPATH']])}
    proc = subprocess.run([shutil.which('launch_test'), str(HERE / 'launch_tests' / name),
                           *launch_args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-8000:]
    return report


@pytest.mark.ros
@pytest.mark.slow
def test_segment_launch(ros2_workspace, ros2_files):
    """Nodes up, masks with the input header at camera rate, ros2 param, namespace, monitor."""
    report = _launch_test('test_segment.launch.py', f'model:={ros2_files["model"]}')
    assert 'Ran 3 tests' in report and 'Ran 1 test' in report


@pytest.mark.ros
@pytest.mark.slow
def test_cameras_launch_runs_one_node_for_two_cameras(ros2_workspace, ros2_files):
    """cameras:=front,rear: masks under each camera, a flicker monitor per camera."""
    report = _launch_test('test_cameras.launch.py', f'model:={ros2_files["model"]}')
    assert 'Ran 1 test' in report


@pytest.mark.ros
@pytest.mark.slow
def test_replay_launch_gives_every_frame_of_the_bag_a_mask(ros2_workspace, ros2_files):
    """replay.launch.py on a `stkd synth --bag` bag, with the ONNX Runtime backend."""
    report = _launch_test('test_replay.launch.py', f'bag:={ros2_files["bag"]}',
                          f'model:={ros2_files["onnx"]}', 'backend:=onnxruntime',
                          f'frames:={ros2_files["frames"]}')
    assert 'Ran 1 test' in report
    print(next(line for line in report.splitlines() if line.startswith('replay: ')))


@pytest.mark.ros
@pytest.mark.slow
def test_a_node_that_fails_at_start_shuts_the_launch_down(ros2_workspace, tmp_path):
    """The launch does not go on without its node: it ends, with the node's one error line."""
    start = time.monotonic()
    proc = subprocess.run(['ros2', 'launch', 'stkd_ros', 'segment.launch.py',
                           f'model:={tmp_path / "missing.safetensors"}',
                           'use_flicker_monitor:=true'],
                          capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert f'segment_node: error: model file not found: {tmp_path}' in out, out
    assert 'process has died' in out and 'exit code 1' in out, out
    # on_exit=Shutdown stopped flicker_monitor, which would have run on alone.
    assert 'flicker_monitor-2]: process has finished cleanly' in out, out
    assert 'Traceback' not in out, out
    assert took < 60, f'the launch ran {took:.0f} s'


def test_params_file_only_sets_declared_parameters():
    """An undeclared key in the file is ignored by rclpy without a word: keep the file honest."""
    params = yaml.safe_load((ROOT / 'config' / 'segment.yaml').read_text())
    sources = {'segment_node': 'segment_node.py', 'flicker_monitor': 'flicker_node.py'}
    for node, source in sources.items():
        text = (ROOT / 'stkd_ros' / 'nodes' / source).read_text()
        for key in params[node]['ros__parameters']:
            assert f"'{key}'" in text, f'{node}: {key} is not declared in {source}'


def test_middleware_profile_is_installed_and_well_formed():
    from xml.etree import ElementTree
    root = ElementTree.parse(ROOT / 'config' / 'fastdds_profile.xml').getroot()
    assert root.tag.endswith('profiles')
    assert "glob('config/*.xml')" in (ROOT / 'setup.py').read_text()
