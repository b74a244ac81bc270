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
import signal
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
    """replay.launch.py on a `stkd synth --bag` bag, ONNX Runtime backend, temporal fusion."""
    report = _launch_test('test_replay.launch.py', f'bag:={ros2_files["bag"]}',
                          f'model:={ros2_files["onnx"]}', 'backend:=onnxruntime',
                          'temporal_fusion:=true', f'frames:={ros2_files["frames"]}')
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


def _wait_for_text(log: Path, text: str, count: int = 1, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_text(errors='replace').count(text) >= count:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize('respawn', [False, True], ids=['shuts_down', 'respawns'])
def test_a_node_whose_frames_keep_failing_ends_the_launch_or_is_respawned(
        ros2_workspace, ros2_files, tmp_path, respawn):
    """A model that raises on every frame: segment_node exits 1; respawn:=true restarts it."""
    from failing_model import failing_onnx
    model = failing_onnx(tmp_path, fail_above=float('-inf'))
    log = tmp_path / 'launch.log'
    gave_up = 'segment_node: error: 10 frames in a row failed'
    with open(log, 'w') as out:
        # The flicker monitor subscribes to the masks: outputs nobody wants are not computed.
        launch = subprocess.Popen(
            ['ros2', 'launch', 'stkd_ros', 'segment.launch.py', f'model:={model}',
             'backend:=onnxruntime', 'image:=/camera/image_raw', 'use_flicker_monitor:=true',
             f'respawn:={str(respawn).lower()}', 'respawn_delay:=0.5'],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        # A session of its own: `ros2 run` starts the player as its child, and a player left
        # looping would publish into the later tests' domain.
        player = subprocess.Popen(['ros2', 'run', 'stkd_ros', 'bag_player', '--ros-args', '-p',
                                   f'bag:={ros2_files["bag"]}', '-p', 'loop:=true'],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        if respawn:
            # Given up, started again, given up again: the launch goes on until Ctrl-C.
            assert _wait_for_text(log, gave_up, count=2), log.read_text()
            assert launch.poll() is None and 'flicker_monitor-2]: process has' not in \
                log.read_text(), log.read_text()
            os.killpg(launch.pid, signal.SIGINT)
        assert launch.wait(timeout=120) is not None
    finally:
        for proc in (player, launch):
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # the whole session, children included
            except ProcessLookupError:
                pass
            proc.wait()
    text = log.read_text(errors='replace')
    assert gave_up in text and 'segment_node-1]: process has died' in text, text
    assert 'exit code 1' in text, text
    if not respawn:   # on_exit=Shutdown stopped flicker_monitor, which would have run on alone
        assert text.count(gave_up) == 1, text
        assert 'flicker_monitor-2]: process has finished cleanly' in text, text


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
