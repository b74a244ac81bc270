"""
Launch test (launch_testing): replay.launch.py as installed by colcon.

Run by test/test_launch.py as `launch_test test_replay.launch.py bag:=... model:=...
backend:=... frames:=N`: every frame of the bag must come back as a mask, with no race at
start (the player waits for segment_node and flicker_monitor).
"""

import os
import unittest

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
import launch_testing
import launch_testing.asserts
import rclpy
from ros_harness import qos, spin_until
from sensor_msgs.msg import Image
from std_msgs.msg import Float32

SHARE = get_package_share_directory('stkd_ros')
ARGS = ('bag', 'model', 'backend')


def generate_test_description():
    return LaunchDescription([
        *[DeclareLaunchArgument(name) for name in ARGS],
        DeclareLaunchArgument('frames', description='image messages in the bag'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(SHARE, 'launch', 'replay.launch.py')),
            launch_arguments={name: LaunchConfiguration(name) for name in ARGS}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestReplay(unittest.TestCase):

    def test_every_frame_of_the_bag_gets_a_mask(self, launch_service, proc_output):
        frames = int(launch_service.context.launch_configurations['frames'])
        rclpy.init()
        ros = rclpy.create_node('replay_test_client')
        masks, flicker = [], []
        try:
            # Subscribed before the model loads, so before the player can start.
            ros.create_subscription(Image, '/segmentation/mask', masks.append, qos(True, 500))
            ros.create_subscription(Float32, '/segmentation/flicker', flicker.append,
                                    qos(True, 500))
            proc_output.assertWaitFor('played', timeout=180, stream='stderr')
            spin_until(ros, lambda: len(masks) >= frames and len(flicker) >= frames - 1, 30)
        finally:
            ros.destroy_node()
            rclpy.shutdown()
        stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in masks}
        print(f'replay: {frames} frames, {len(masks)} masks ({len(stamps)} stamps), '
              f'{len(flicker)} flicker steps')
        self.assertEqual(len(stamps), frames, 'frames of the bag with a mask')
        self.assertEqual(len(masks), frames, 'masks')
        self.assertGreater(len(flicker), 0, 'flicker_monitor measured nothing')


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_every_node_exits_cleanly(self, proc_info, proc_output):
        launch_testing.asserts.assertExitCodes(proc_info)
        for output in proc_output:
            self.assertNotIn('Traceback', output.text.decode(errors='replace'))
