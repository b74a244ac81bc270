"""
The README's ROS 2 section, run as written in a colcon workspace.

The first block is a ROS user's workspace commands; its `colcon build` and `source` run here
(its `rosdep install` in test_rosdep.py, its `colcon test` in test_package.py). Each later
```bash block of the section is one session: `ros2 launch`, `ros2 run` and `ros2 topic
hz` start in the background (the terminals a user opens), every other command runs in order
and must succeed (retried while the nodes start), then Ctrl-C (SIGINT to each background
process group, as a terminal sends it) must stop everything within 5 s without a traceback.
"""

import os
import re
import signal
import subprocess
import time

import pytest
from ros2_workspace import readme_ros2_blocks as ros2_blocks

BACKGROUND = re.compile(r'^ros2 (launch|run|topic hz) ')
FAILED = ('failed', 'not set', 'not found', 'Traceback', 'error')
# What a ROS user types in a workspace, in order (rosdep's and pip's lines install packages).
WORKSPACE = ['rosdep install --from-paths src --ignore-src -y',
             'pip install -r src/stkd_ros/requirements-ros.txt',
             'colcon build', 'source install/setup.bash',
             'colcon test', 'colcon test-result --verbose']


def test_the_section_starts_with_the_workspace_commands_then_command_blocks():
    blocks = ros2_blocks()
    assert blocks[0] == WORKSPACE
    assert len(blocks) >= 4 and all(any(BACKGROUND.match(c) for c in b) for b in blocks[1:])


@pytest.fixture(scope='module')
def sourced(ros2_workspace, ros2_files):
    """Run the first block's build and source lines in the workspace; the environment left."""
    env = {k: v for k, v in os.environ.items() if k not in ('AMENT_PREFIX_PATH', 'PYTHONPATH')}
    build = [c for c in ros2_blocks()[0] if c.startswith(('colcon build', 'source '))]
    script = '\n'.join(build + ['env -0'])
    proc = subprocess.run(['bash', '-ec', script], cwd=ros2_workspace, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    env = dict(item.split('=', 1) for item in proc.stdout.split('\0') if '=' in item)
    assert env['AMENT_PREFIX_PATH'].endswith('install/stkd_ros')
    return env


def _run_until_ok(command, cwd, env, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        try:
            proc = subprocess.run(['bash', '-c', command], cwd=cwd, env=env, text=True,
                                  capture_output=True, timeout=deadline - time.monotonic())
        except subprocess.TimeoutExpired:
            raise AssertionError(f'{command}: no result in {timeout} s') from None
        out = proc.stdout + proc.stderr
        if proc.returncode == 0 and not any(word in out for word in FAILED):
            return out
        assert time.monotonic() < deadline, f'{command}\n{out}'
        time.sleep(2)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize('block', range(1, len(ros2_blocks())))
def test_ros2_block_runs_as_written_and_ctrl_c_stops_it(block, sourced, ros2_workspace,
                                                        tmp_path):
    background = []
    try:
        for n, command in enumerate(ros2_blocks()[block]):
            if BACKGROUND.match(command):
                log = open(tmp_path / f'{n}.log', 'w+')
                background.append((command, log, subprocess.Popen(
                    ['bash', '-c', f'exec {command}'], cwd=ros2_workspace, env=sourced,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)))
            else:
                print(f'$ {command}\n{_run_until_ok(command, ros2_workspace, sourced)}')
        for command, log, proc in background:   # every one is up and has said something
            deadline = time.monotonic() + 60
            while proc.poll() is None and not log.tell() and time.monotonic() < deadline:
                time.sleep(0.5)
                log.seek(0, os.SEEK_END)
            assert proc.poll() is None, f'{command} ended early:\n{_read(log)}'
    finally:
        for command, log, proc in background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        stopped = time.monotonic()
        outputs = []
        for command, log, proc in background:
            try:
                proc.wait(timeout=max(0.1, stopped + 5 - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                outputs.append((command, None, _read(log)))
                continue
            outputs.append((command, proc.returncode, _read(log)))
    for command, code, out in outputs:
        print(f'$ {command}  (exit {code})\n{out[-3000:]}')
        assert code is not None, f'{command}: still running 5 s after Ctrl-C'
        assert 'Traceback' not in out, command
        assert '[ERROR]' not in out and 'error:' not in out, command


def _read(log):
    log.flush()
    log.seek(0)
    return log.read()
