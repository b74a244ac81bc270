"""
flicker_monitor: temporal flicker of a segmentation stream, measured live with optical flow.

Pairs each ``segmentation/mask`` with its ``image`` by header stamp, computes DIS flow between
consecutive images (both ways, for the occlusion check), and publishes each step's flicker
(``segmentation/flicker``) and TC (``segmentation/tc``) as std_msgs/Float32, the running
totals since the start on ``/diagnostics``, and optionally a CSV log (``log_path``). The
measuring is :class:`stkd_ros.flicker.FlickerMeter`: the same flow and the same metric as
``stkd eval-bag``, whose figures for a drive are the monitor's running totals for it.
"""

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float32

from stkd_ros.flicker import FlickerMeter, StampPairer
from stkd_ros.flow.pairs import PairFlow, StreamFlow
from stkd_ros.image_msgs import ImageError, mask_to_array, message_to_rgb, stamp_ns
from stkd_ros.nodes.adaptive_qos import AdaptiveSubscription
from stkd_ros.nodes.diagnostics import diagnostics
from stkd_ros.nodes.parameters import declare, describe, int_range
from stkd_ros.nodes.process import run


class FlickerMonitor(Node):
    """
    Measure the flicker and TC of ``segmentation/mask`` against ``image``, step by step.

    A mask and its image meet by header stamp; each step compares the newest pair with the
    pair before it along the stream's flow. The measuring is
    :class:`stkd_ros.flicker.FlickerMeter`'s; this class converts messages, counts what it
    rejects and publishes the figures. Parameters are read once at start.
    """

    meter = None   # set once the parameters are valid; destroy_node may run before

    def __init__(self, **kwargs):
        super().__init__('flicker_monitor', **kwargs)
        p = declare(self, [
            ('window', 100, describe('steps of the recent flicker on /diagnostics', True,
                                     integer_range=int_range(1))),
            ('max_side', 480, describe('flow is computed on images at most this many pixels '
                                       'wide or high', True, integer_range=int_range(16))),
            ('log_path', '', describe('CSV file of every step; empty = no log', True)),
            ('reliability', 'auto', describe('image subscription: auto (match the '
                                             'publishers), reliable or best_effort', True)),
            ('qos_depth', 5, describe('image and mask subscription depth: more keeps every '
                                      'frame when the flow falls behind (replay)', True,
                                      integer_range=int_range(1))),
        ])
        reliability = p['reliability']
        self.meter = FlickerMeter(window=p['window'],
                                  stream=StreamFlow(PairFlow.for_streams(p['max_side'])),
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
            pair = self.pairer.add_image(stamp_ns(msg), message_to_rgb(msg))
        except ImageError as exc:
            self.rejected += 1
            self.get_logger().warning(f'rejected image: {exc}', throttle_duration_sec=5.0)
            return
        self._step(stamp_ns(msg), pair)

    def _on_mask(self, msg):
        try:
            mask = mask_to_array(msg)
        except ImageError as exc:
            self.rejected += 1
            self.get_logger().warning(f'rejected mask: {exc}', throttle_duration_sec=5.0)
            return
        self._step(stamp_ns(msg), self.pairer.add_mask(stamp_ns(msg), mask))

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
            f'flicker {s["flicker"]:.4f} over {s["steps"]} steps', s))

    def destroy_node(self):
        if self.meter is not None:
            self.meter.close()
        return super().destroy_node()


def main(args=None):
    run(FlickerMonitor, 'flicker_monitor', args)


if __name__ == '__main__':
    main()
