"""
Launch test (launch_testing): segment.launch.py with ``cameras:=front,rear``.

Run by test/test_launch.py as `launch_test test_cameras.launch.py model:=FILE`: one batched
segment_node for two cameras whose images are on <camera>/image_raw, and a flicker monitor
per camera in that camera's namespace.
"""

import unittest

from launch_checks import segment_launch_test, TestShutdown  # noqa: F401 (after shutdown)
import rclpy
from ros_harness import image_msg, qos, spin_until, wait_for_readers
from sensor_msgs.msg import Image
from std_msgs.msg import Float32
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld

CAMERAS = {'front': (120, 160), 'rear': (96, 128)}


def generate_test_description():
    return segment_launch_test(cameras='front,rear', image='image_raw',
                               use_flicker_monitor='true')


class TestCamerasLaunch(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.ros = rclpy.create_node('launch_test_client')
        cls.masks = {c: [] for c in CAMERAS}
        cls.flicker = {c: [] for c in CAMERAS}
        cls.pubs = {}
        for c in CAMERAS:
            cls.ros.create_subscription(Image, f'/{c}/segmentation/mask', cls.masks[c].append,
                                        qos(True, 100))
            cls.ros.create_subscription(Float32, f'/{c}/segmentation/flicker',
                                        cls.flicker[c].append, qos(True, 100))
            cls.pubs[c] = cls.ros.create_publisher(Image, f'/{c}/image_raw', qos(True))
        # segment_node and the camera's flicker_monitor subscribe to each camera's images.
        assert wait_for_readers(cls.ros, cls.pubs.values(), 2, 90), \
            'segment_node and the flicker monitors did not subscribe to <camera>/image_raw'

    @classmethod
    def tearDownClass(cls):
        cls.ros.destroy_node()
        rclpy.shutdown()

    def test_one_node_segments_both_cameras_and_each_camera_has_a_monitor(self):
        def names():
            return {f'{ns.rstrip("/")}/{n}' for n, ns in self.ros.get_node_names_and_namespaces()}

        # Node names are discovered apart from (and can lag) the topics' endpoints.
        expected = {'/segment_node', '/front/flicker_monitor', '/rear/flicker_monitor'}
        self.assertTrue(spin_until(self.ros, lambda: expected <= names(), 30), names())
        frames = {c: [SyntheticWorld(SyntheticConfig(height=h, width=w, frames=12, seed=i))
                      .frame(0, t)[0] for t in range(12)]
                  for i, (c, (h, w)) in enumerate(CAMERAS.items())}
        for t in range(12):   # two 5 Hz cameras; each frame resent until its mask is back
            for _ in range(10):
                for c, pub in self.pubs.items():
                    pub.publish(image_msg(frames[c][t], 1_000_000_000 + t, frame_id=f'{c}{t}'))
                if spin_until(self.ros, lambda: all(
                        any(m.header.frame_id == f'{c}{t}' for m in self.masks[c])
                        for c in CAMERAS), 2):
                    break
            spin_until(self.ros, lambda: False, 0.2)
        for c, (h, w) in CAMERAS.items():
            ids = {m.header.frame_id for m in self.masks[c]}
            self.assertEqual(ids, {f'{c}{t}' for t in range(12)}, f'{c}: masks')
            self.assertTrue(all((m.height, m.width) == (h, w) for m in self.masks[c]))
        self.assertTrue(spin_until(self.ros, lambda: all(len(self.flicker[c]) >= 5
                                                         for c in CAMERAS), 10),
                        f'flicker steps: {[len(v) for v in self.flicker.values()]}')
