"""
Shared fixtures: a small synthetic world, rendered once per session; a colcon workspace.

A user cache of the session's own, for every test (``private_user_cache``).

And a ROS client node per test module, for the tests of real node processes.
"""

import os
import subprocess

import pytest
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld


@pytest.fixture(scope='session', autouse=True)
def private_user_cache(tmp_path_factory):
    """
    Point ``XDG_CACHE_HOME`` at a folder of the session, for the tests and what they start.

    The package's user caches (decoded bag frames: ``stkd_ros/frames``) would otherwise fill
    the real ``~/.cache``, and a test could find there what an earlier run left.
    """
    cache = tmp_path_factory.mktemp('user_cache')
    before = os.environ.get('XDG_CACHE_HOME')
    os.environ['XDG_CACHE_HOME'] = str(cache)
    yield cache
    if before is None:
        os.environ.pop('XDG_CACHE_HOME', None)
    else:
        os.environ['XDG_CACHE_HOME'] = before


@pytest.fixture(scope='session')
def small_world():
    return SyntheticWorld(SyntheticConfig(height=96, width=192, frames=6, difficulty=0.6,
                                          seed=3))


@pytest.fixture(scope='session')
def world_256():
    return SyntheticWorld(SyntheticConfig(height=256, width=512, frames=4, difficulty=0.5,
                                          seed=11))


@pytest.fixture(scope='session')
def ros2_workspace(tmp_path_factory):
    """
    Build this package with `colcon build` in a fresh workspace; point the environment at it.

    Skips (with the reason) where the ROS 2 launch tools or colcon are not installed: CI puts
    them into .venv with ../shared/ros2-upstream/install.sh; a ROS 2 machine has them.
    """
    for module in ('launch', 'launch_ros', 'launch_testing', 'ros2cli', 'colcon_core'):
        pytest.importorskip(module, reason=f'{module} is not installed (ROS 2 launch tools: '
                                           f'../shared/ros2-upstream/install.sh .venv)')
    from ros2_workspace import build_workspace, installed_environment
    from ros_harness import ros_env
    ws = tmp_path_factory.mktemp('ros2_ws')
    prefix = build_workspace(ws)
    ros_env()   # a private DDS domain for this session
    os.environ.update(installed_environment(prefix))   # launch resolves the package here
    yield ws
    # The `ros2` commands start a daemon for the domain, which would outlive the tests.
    subprocess.run(['ros2', 'daemon', 'stop'], capture_output=True, timeout=60)


@pytest.fixture(scope='session')
def ros2_files(ros2_workspace):
    """Model file, its ONNX export and a synthetic bag, where the README's commands find them."""
    from ros2_workspace import PACKAGE, quickstart_files
    return quickstart_files(ros2_workspace / 'src' / PACKAGE)


# Launch test files, run by test_launch.py through the `launch_test` command, not by pytest.
collect_ignore = ['launch_tests']


@pytest.fixture(scope='module')
def ros():
    """Yield a client node on the tests' private DDS domain (``ros_harness.ros_env``)."""
    import rclpy   # only the ROS tests need it
    from ros_harness import ros_env
    ros_env()
    rclpy.init()
    node = rclpy.create_node('stkd_test_client')
    yield node
    node.destroy_node()
    rclpy.shutdown()
