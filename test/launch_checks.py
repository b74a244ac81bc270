"""Shared by the launch tests: segment.launch.py as a test runs it, the post-shutdown check."""

import os
import unittest

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
import launch_testing
import launch_testing.actions
import launch_testing.asserts


def segment_launch_test(**launch_arguments) -> LaunchDescription:
    """Return the installed segment.launch.py with ``launch_arguments`` and the test's model."""
    share = get_package_share_directory('stkd_ros')
    return LaunchDescription([
        DeclareLaunchArgument('model', description='model file (.safetensors)'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'segment.launch.py')),
            launch_arguments={'model': LaunchConfiguration('model'),
                              **launch_arguments}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


# Import it into a launch test: launch_testing runs it after the launch has shut down.
@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_every_node_exits_cleanly(self, proc_info, proc_output):
        launch_testing.asserts.assertExitCodes(proc_info)
        for output in proc_output:
            self.assertNotIn('Traceback', output.text.decode(errors='replace'))
