"""
bag_player: publish a bag's image topics at the recorded timing (times ``rate``).

Reads sqlite3 and MCAP bags with `rosbags`, so replay works where `ros2 bag` is not installed.
Header stamps are kept as recorded; ``loop`` starts over at the end.
"""

import time

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from stkd_ros.bag.reader import image_topics, iter_messages, open_bag
from stkd_ros.nodes.lifecycle import run


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
    def __init__(self, **kwargs):
        super().__init__('bag_player', **kwargs)
        self.bag = self.declare_parameter('bag', '').value
        self.rate = float(self.declare_parameter('rate', 1.0).value)
        self.loop = bool(self.declare_parameter('loop', False).value)
        topics = list(self.declare_parameter('topics', ['']).value or [])
        reliable = self.declare_parameter('reliable', True).value
        self.wait_for = int(self.declare_parameter('wait_for_subscribers', 0).value)
        if not self.bag:
            raise ValueError('parameter bag is required (a bag directory or file)')
        if self.rate <= 0:
            raise ValueError(f'rate must be positive, got {self.rate}')
        with open_bag(self.bag) as reader:
            available = image_topics(reader)
        self.topics = [t for t in topics if t] or sorted(available)
        if not self.topics:
            raise ValueError(f'bag {self.bag} has no sensor_msgs Image/CompressedImage topic')
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.pubs = {t: self.create_publisher(
            Image if available.get(t, '').endswith('/Image') else CompressedImage, t, qos)
            for t in self.topics}
        self.published = 0

    def wait_for_subscribers(self, timeout: float = 30.0):
        """Hold playback until every topic has ``wait_for_subscribers`` subscribers."""
        deadline = time.monotonic() + timeout
        while self.wait_for and time.monotonic() < deadline and rclpy.ok():
            if all(p.get_subscription_count() >= self.wait_for for p in self.pubs.values()):
                return
            rclpy.spin_once(self, timeout_sec=0.05)

    def play(self):
        """Publish every message once (or forever with loop), sleeping to the bag's clock."""
        self.wait_for_subscribers()
        while rclpy.ok():
            start_wall, start_bag = time.monotonic(), None
            with open_bag(self.bag) as reader:
                for topic, msgtype, stamp, msg in iter_messages(reader, self.topics):
                    start_bag = stamp if start_bag is None else start_bag
                    due = start_wall + (stamp - start_bag) / 1e9 / self.rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    if not rclpy.ok():
                        return
                    self.pubs[topic].publish(to_ros(msgtype, msg))
                    self.published += 1
            self.get_logger().info(f'played {self.bag} ({self.published} messages so far)')
            if not self.loop:
                for pub in self.pubs.values():   # let reliable readers get the last frames
                    pub.wait_for_all_acked(Duration(seconds=5))
                return


def _play(node):
    time.sleep(1.0)   # let subscribers discover the publishers first
    node.play()


def main(args=None):
    run(BagPlayer, 'bag_player', args, work=_play)


if __name__ == '__main__':
    main()
