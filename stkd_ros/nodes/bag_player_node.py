"""
bag_player: publish a bag's image topics at the recorded timing (times ``rate``).

Reads sqlite3 and MCAP bags with `rosbags`, so replay works where `ros2 bag` is not installed.
Header stamps are kept as recorded; ``loop`` starts over at the end.
"""

import time

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from stkd_ros.bag.reader import image_topics, iter_messages, open_bag
from stkd_ros.errors import InputError
from stkd_ros.nodes.parameters import declare, describe, int_range
from stkd_ros.nodes.process import run


def to_ros(msgtype: str, msg):
    """Copy a rosbags image message into the matching rclpy message."""
    out = Image() if msgtype.endswith('/Image') else CompressedImage()
    out.header.stamp.sec = int(msg.header.stamp.sec)
    out.header.stamp.nanosec = int(msg.header.stamp.nanosec)
    out.header.frame_id = str(msg.header.frame_id)
    if isinstance(out, Image):
        out.height, out.width, out.encoding = int(msg.height), int(msg.width), msg.encoding
        out.is_bigendian, out.step = int(msg.is_bigendian), int(msg.step)
    else:
        out.format = msg.format
    out.data = bytes(msg.data)
    return out


class BagPlayer(Node):
    """
    Publish the image topics of one bag, each message once, at the recorded timing.

    With ``wait_for_subscribers`` N > 0, playback starts only once every played topic has N
    subscribers, and ``start_delay`` seconds after that, so nodes that take seconds to load (a
    model) see the first frame.
    """

    def __init__(self, **kwargs):
        super().__init__('bag_player', **kwargs)
        p = declare(self, [
            ('bag', '', describe('bag directory or file (MCAP or sqlite3)', True)),
            ('topics', Parameter.Type.STRING_ARRAY, describe(
                'image topics to play; empty = every Image/CompressedImage topic', True)),
            ('rate', 1.0, describe('playback speed, times the recorded timing', True)),
            ('loop', False, describe('start over at the end of the bag', True)),
            ('reliable', True, describe('publish reliable (else best effort)', True)),
            ('wait_for_subscribers', 0, describe(
                'start playing once every topic has this many subscribers; 0 = at once',
                True, integer_range=int_range(0, 100))),
            ('start_delay', 1.0, describe(
                'seconds between the subscribers matching and the first frame', True)),
        ])
        self.bag, self.rate, self.loop = p['bag'], p['rate'], p['loop']
        self.wait_for, self.start_delay = p['wait_for_subscribers'], p['start_delay']
        if not self.bag:
            raise InputError('parameter bag is required (a bag directory or file)')
        if self.rate <= 0:
            raise InputError(f'rate must be positive, got {self.rate}')
        if self.start_delay < 0:
            raise InputError(f'start_delay must be 0 or more, got {self.start_delay}')
        with open_bag(self.bag) as reader:
            available = image_topics(reader)
        self.topics = list(p['topics']) or sorted(available)
        if not self.topics:
            raise InputError(f'bag {self.bag} has no sensor_msgs Image/CompressedImage topic')
        missing = [t for t in self.topics if t not in available]
        if missing:
            raise InputError(f'bag {self.bag} has no image topic {missing[0]} (it has: '
                             f'{", ".join(sorted(available))})')
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE if p['reliable']
                         else ReliabilityPolicy.BEST_EFFORT)
        self.pubs = {t: self.create_publisher(
            Image if available[t].endswith('/Image') else CompressedImage, t, qos)
            for t in self.topics}
        self.published = 0

    def wait_for_subscribers(self):
        """Hold playback until every topic has ``wait_for_subscribers`` subscribers."""
        if not self.wait_for:
            return
        self.get_logger().info(f'waiting for {self.wait_for} subscriber(s) on '
                               f'{", ".join(self.topics)}')
        self._spin_while(lambda: any(pub.get_subscription_count() < self.wait_for
                                     for pub in self.pubs.values()))
        # The count is the publisher's side of the match. Each reader matches the publisher on
        # its own, later, and a volatile reader drops what was sent before that: once in CI a
        # replay lost the bag's first 2 frames. rosbag2's `play --delay` exists for the same.
        settle = time.monotonic() + self.start_delay
        self._spin_while(lambda: time.monotonic() < settle)

    def _spin_while(self, busy):
        while rclpy.ok() and busy():
            rclpy.spin_once(self, timeout_sec=0.05)

    @staticmethod
    def _sleep_until(due: float):
        # In short naps: Ctrl-C ends the node by shutting the context down, not by interrupting
        # a sleep, and a bag can hold a gap of minutes.
        while rclpy.ok() and (left := due - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))

    def play(self):
        """Publish every message once (or forever with loop), sleeping to the bag's clock."""
        self.wait_for_subscribers()
        while rclpy.ok():
            start_wall, start_bag = time.monotonic(), None
            with open_bag(self.bag) as reader:
                for topic, msgtype, stamp, msg in iter_messages(reader, self.topics):
                    start_bag = stamp if start_bag is None else start_bag
                    self._sleep_until(start_wall + (stamp - start_bag) / 1e9 / self.rate)
                    if not rclpy.ok():
                        return
                    self.pubs[topic].publish(to_ros(msgtype, msg))
                    self.published += 1
            self.get_logger().info(f'played {self.bag} ({self.published} messages so far)')
            if not self.loop:
                for pub in self.pubs.values():   # let reliable readers get the last frames
                    pub.wait_for_all_acked(Duration(seconds=5))
                return


def main(args=None):
    run(BagPlayer, 'bag_player', args, work=BagPlayer.play)


if __name__ == '__main__':
    main()
