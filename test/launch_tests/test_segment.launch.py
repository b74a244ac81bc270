"""
Launch test (launch_testing): segment.launch.py as installed by colcon, with the `ros2` command.

Run by test/test_launch.py as `launch_test test_segment.launch.py model:=FILE`: namespace
``front``, the flicker monitor on, the PyTorch backend.
"""

import os
import subprocess
import time
import unittest

from ament_index_python.packages import get_package_share_directory
from launch_checks import segment_launch_test, TestShutdown  # noqa: F401 (after shutdown)
import numpy as np
import rclpy
from ros_harness import image_msg, qos, spin_until, wait_for_readers
from sensor_msgs.msg import Image
from std_msgs.msg import Float32
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
import yaml

NS = '/front'
# Topics outside the namespace by ROS convention: the aggregated /diagnostics and rcl's own.
GLOBAL_TOPICS = {'/diagnostics', '/rosout', '/parameter_events'}
SHARE = get_package_share_directory('stkd_ros')


def generate_test_description():
    return segment_launch_test(namespace='front', use_flicker_monitor='true')


def _ros2(*args):
    # `ros2 param` waits 1 s for the node by default: too short on a loaded machine.
    return subprocess.run(['ros2', *args, '--timeout', '20'], capture_output=True, text=True,
                          timeout=60)


class TestSegmentLaunch(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.ros = rclpy.create_node('launch_test_client')
        cls.got = {'mask': [], 'flicker': []}
        cls.ros.create_subscription(Image, f'{NS}/segmentation/mask', cls.got['mask'].append,
                                    qos(True, 100))
        cls.ros.create_subscription(Float32, f'{NS}/segmentation/flicker',
                                    cls.got['flicker'].append, qos(True, 100))
        cls.pub = cls.ros.create_publisher(Image, f'{NS}/image', qos(True))
        # Both nodes subscribe to the image once their model and parameters are loaded.
        assert wait_for_readers(cls.ros, [cls.pub], 2, 90), \
            'segment_node and flicker_monitor did not subscribe to /front/image'

    @classmethod
    def tearDownClass(cls):
        cls.ros.destroy_node()
        rclpy.shutdown()

    def test_nodes_come_up_and_the_namespace_moves_every_topic(self):
        def names():
            return {f'{ns}/{n}' for n, ns in self.ros.get_node_names_and_namespaces()}

        # Node names are discovered apart from (and can lag) the topics' endpoints.
        expected = {f'{NS}/segment_node', f'{NS}/flicker_monitor'}
        self.assertTrue(spin_until(self.ros, lambda: expected <= names(), 30), names())
        for node in ('segment_node', 'flicker_monitor'):
            topics = {t for t, _ in self.ros.get_publisher_names_and_types_by_node(node, NS)}
            topics |= {t for t, _ in self.ros.get_subscriber_names_and_types_by_node(node, NS)}
            self.assertIn(f'{NS}/image', topics)
            self.assertIn(f'{NS}/segmentation/mask', topics)
            moved = {t for t in topics - GLOBAL_TOPICS if not t.startswith(f'{NS}/')}
            self.assertFalse(moved, f'{node}: topics outside {NS}')

    def test_camera_images_get_masks_with_their_header_at_the_camera_rate(self):
        world = SyntheticWorld(SyntheticConfig(height=120, width=160, frames=20, seed=2))
        frames = [world.frame(0, t)[0] for t in range(20)]
        masks = self.got['mask']
        # The first inference is cold: a frame and its mask before the stream, repeated until
        # segment_node has also discovered this test's subscriber.
        for _ in range(15):
            self.pub.publish(image_msg(frames[0], 1_000_000_000, frame_id='warm'))
            if spin_until(self.ros, lambda: masks, 2):
                break
        self.assertTrue(masks, 'no mask for the first frame')
        start = time.monotonic()
        for i, frame in enumerate(frames):   # a 5 Hz camera
            self.pub.publish(image_msg(frame, 2_000_000_000 + i * 200_000_000,
                                       frame_id=f'f{i}'))
            spin_until(self.ros, lambda: False, start + 0.2 * (i + 1) - time.monotonic())

        def streamed():
            return {m.header.frame_id: m for m in masks if m.header.frame_id != 'warm'}

        spin_until(self.ros, lambda: len(streamed()) >= len(frames), 60)   # a bound, not a pace
        got = streamed()
        # A tiny model keeps up with 5 Hz: the masks follow the camera, one per frame.
        self.assertEqual(len(got), len(frames), 'masks for 20 frames at 5 Hz')
        for i in range(len(frames)):
            mask = got[f'f{i}']
            stamp = mask.header.stamp.sec * 10**9 + mask.header.stamp.nanosec
            self.assertEqual(stamp, 2_000_000_000 + i * 200_000_000)
            self.assertEqual((mask.height, mask.width, mask.encoding), (120, 160, 'mono8'))
            self.assertLess(np.frombuffer(bytes(mask.data), np.uint8).max(), 11)
        self.assertTrue(spin_until(self.ros, lambda: len(self.got['flicker']) >= 10, 10),
                        f'flicker_monitor measured {len(self.got["flicker"])} steps')

    def test_ros2_param_reads_every_parameter_and_sets_only_live_ones(self):
        defaults = yaml.safe_load(open(os.path.join(SHARE, 'config', 'segment.yaml')))
        for node in ('segment_node', 'flicker_monitor'):
            dump = _ros2('param', 'dump', f'{NS}/{node}')
            self.assertEqual(dump.returncode, 0, dump.stderr)
            got = yaml.safe_load(dump.stdout)[f'{NS}/{node}']['ros__parameters']
            for key, value in defaults[node]['ros__parameters'].items():   # the launch's file
                self.assertEqual(got[key], value, f'{node}.{key}')
            self.assertNotIn(None, got.values(), f'{node}: a parameter without a value')
        node = f'{NS}/segment_node'
        # An empty list was once declared without a value: 'param get' failed, 'dump' was empty.
        self.assertIn('Integer values are: []', _ros2('param', 'get', node, 'palette').stdout)
        self.assertIn('Double value is: 0.5', _ros2('param', 'get', node, 'overlay_alpha').stdout)
        # A whole number for a float parameter, as people type it.
        self.assertIn('successful', _ros2('param', 'set', node, 'overlay_alpha', '1').stdout)
        self.assertIn('Double value is: 1.0', _ros2('param', 'get', node, 'overlay_alpha').stdout)
        refused = _ros2('param', 'set', node, 'model_path', '/elsewhere.safetensors')
        self.assertIn('read-only', refused.stdout + refused.stderr)
        out_of_range = _ros2('param', 'set', node, 'overlay_alpha', '3.0')
        self.assertNotIn('successful', out_of_range.stdout)
        self.assertIn('Double value is: 1.0', _ros2('param', 'get', node, 'overlay_alpha').stdout)
