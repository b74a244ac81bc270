"""
flicker_monitor: temporal flicker of a segmentation stream, measured live with optical flow.

Pairs each ``segmentation/mask`` with its ``image`` by header stamp, computes DIS flow between
consecutive images, and publishes each step's flicker (``segmentation/flicker``) and TC
(``segmentation/tc``) as std_msgs/Float32, a windowed summary on ``/diagnostics``, and
optionally a CSV log (``log_path``).
"""

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import IntegerRange
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float32

from stkd_ros.flicker import FlickerMeter, StampPairer
from stkd_ros.nodes.adaptive_qos import AdaptiveSubscription
from stkd_ros.nodes.conversion import ImageError, message_to_rgb
from stkd_ros.nodes.lifecycle import diagnostics, run
from stkd_ros.nodes.parameters import declare, describe


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _at_least(low):
    return [IntegerRange(from_value=low, to_value=1_000_000, step=1)]


class FlickerMonitor(Node):
    """
    Measure the flicker and TC of ``segmentation/mask`` against ``image``, step by step.

    A mask and its image meet by header stamp; each step compares the newest pair with the
    pair before it along DIS flow. Parameters are read once at start.
    """

    meter = None   # set once the parameters are valid; destroy_node may run before

    def __init__(self, **kwargs):
        super().__init__('flicker_monitor', **kwargs)
        p = declare(self, [
            ('window', 100, describe('steps in the windowed /diagnostics summary', True,
                                     integer_range=_at_least(1))),
            ('max_side', 480, describe('flow is computed on images at most this many pixels '
                                       'wide or high', True, integer_range=_at_least(16))),
            ('log_path', '', describe('CSV file of every step; empty = no log', True)),
            ('reliability', 'auto', describe('image subscription: auto (match the '
                                             'publishers), reliable or best_effort', True)),
            ('qos_depth', 5, describe('image and mask subscription depth: more keeps every '
                                      'frame when the flow falls behind (replay)', True,
                                      integer_range=_at_least(1))),
        ])
        reliability = p['reliability']
        self.meter = FlickerMeter(window=p['window'], max_side=p['max_side'],
                                  log_path=p['log_path'] or None)
        self.pairer = StampPairer()
        self.rejected = 0
        self.pub_flicker = self.create_publisher(Float32, 'segmentation/flicker', 10)
        self.pub_tc = self.create_publisher(Float32, 'segmentation/tc', 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # Images can arrive faster than masks; keep a few so each mask finds its image.
        depth = p['qos_depth']
        self.subs = [AdaptiveSubscription(self, Image, 'image', self._on_image, reliability,
                                          depth),
                     AdaptiveSubscription(self, Image, 'segmentation/mask', self._on_mask,
                                          'reliable', depth)]
        self.create_timer(1.0, self._diagnostics)

    def _on_image(self, msg):
        try:
            pair = self.pairer.add_image(_stamp(msg), message_to_rgb(msg))
        except ImageError as exc:
            self.rejected += 1
            self.get_logger().warning(f'rejected image: {exc}', throttle_duration_sec=5.0)
            return
        self._step(_stamp(msg), pair)

    def _on_mask(self, msg):
        if msg.encoding != 'mono8':
            self.rejected += 1
            self.get_logger().warning(f'mask encoding {msg.encoding!r} is not mono8',
                                      throttle_duration_sec=5.0)
            return
        import numpy as np
        mask = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
        self._step(_stamp(msg), self.pairer.add_mask(_stamp(msg), mask[:, :msg.width]))

    def _step(self, stamp, pair):
        if pair is None:
            return
        image, mask = pair
        if image.shape[:2] != mask.shape:
            self.rejected += 1
            return
        result = self.meter.update(stamp, image, mask)
        if result is not None and result['pixels']:
            self.pub_flicker.publish(Float32(data=result['flicker']))
            self.pub_tc.publish(Float32(data=result['tc']))

    def _diagnostics(self):
        s = {**self.meter.summary(), 'rejected': self.rejected}
        self.pub_diag.publish(diagnostics(
            self, 'temporal consistency', 'dis-flow',
            f'flicker {s.get("flicker_mean", float("nan")):.4f} over {s["steps"]} steps', s))

    def destroy_node(self):
        if self.meter is not None:
            self.meter.close()
        return super().destroy_node()


def main(args=None):
    run(FlickerMonitor, 'flicker_monitor', args)


if __name__ == '__main__':
    main()
