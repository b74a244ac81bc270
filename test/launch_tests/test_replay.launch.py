"""
Launch test (launch_testing): replay.launch.py as installed by colcon.

Run by test/test_launch.py as `launch_test test_replay.launch.py bag:=... model:=...
backend:=... temporal_fusion:=... frames:=N`: every frame of the bag must be segmented and its
mask reach flicker_monitor, with no race at start (the player waits for segment_node and
flicker_monitor), and segment_node must say it runs temporal fusion as the launch asked.
"""

import os
import unittest

from ament_index_python.packages import get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_checks import TestShutdown  # noqa: F401 (run after shutdown)
import launch_testing
import rclpy
from ros_harness import qos, spin_until

SHARE = get_package_share_directory('stkd_ros')
ARGS = ('bag', 'model', 'backend', 'temporal_fusion')


def generate_test_description():
    return LaunchDescription([
        *[DeclareLaunchArgument(name) for name in ARGS],
        DeclareLaunchArgument('frames', description='image messages in the bag'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(SHARE, 'launch', 'replay.launch.py')),
            launch_arguments={name: LaunchConfiguration(name) for name in ARGS}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


def _latest(diagnostics, node):
    """Counters of ``node``'s newest /diagnostics status, as ints where they are whole."""
    for msg in reversed(diagnostics):
        for status in msg.status:
            if status.name.startswith(f'{node}: '):
                return {kv.key: int(kv.value) for kv in status.values if kv.value.isdigit()}
    return {}


class TestReplay(unittest.TestCase):

    def test_every_frame_of_the_bag_gets_a_mask(self, launch_service, proc_output):
        """
        Judge by the nodes' own counters on /diagnostics, which repeat every second.

        The test does not subscribe to the mask topic: segment_node holds its frames until
        one subscriber matched there (wait_for_mask_subscribers), and that must be
        flicker_monitor.
        """
        configured = launch_service.context.launch_configurations
        frames = int(configured['frames'])
        # segment_node's start line names the fusion it runs (its parameter, as it arrived).
        fusion = {'true': 'temporal fusion flow-guided temporal fusion: ',
                  'false': 'temporal fusion off'}[configured['temporal_fusion']]
        proc_output.assertWaitFor(fusion, timeout=120, stream='stderr')
        rclpy.init()
        ros = rclpy.create_node('replay_test_client')
        diagnostics = []
        try:
            ros.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append,
                                    qos(True, 100))
            proc_output.assertWaitFor('played', timeout=180, stream='stderr')

            def done():
                return (_latest(diagnostics, 'segment_node').get('processed') == frames
                        and _latest(diagnostics, 'flicker_monitor').get('steps') == frames - 1)

            spin_until(ros, done, 30)
        finally:
            ros.destroy_node()
            rclpy.shutdown()
        segment, monitor = (_latest(diagnostics, n) for n in ('segment_node', 'flicker_monitor'))
        print(f'replay: {frames} frames; segment_node {segment}; flicker_monitor steps '
              f'{monitor.get("steps")}')
        self.assertEqual((segment.get('received'), segment.get('processed'),
                          segment.get('dropped'), segment.get('rejected')), (frames, frames, 0, 0))
        # Each step pairs a mask with its image by stamp and compares it with the pair before:
        # frames - 1 steps take a mask for every frame.
        self.assertEqual(monitor.get('steps'), frames - 1)
