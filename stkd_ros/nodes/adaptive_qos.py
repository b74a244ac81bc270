"""An image subscription whose reliability follows the topic's publishers (rclpy)."""

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from stkd_ros.nodes.qos import BEST_EFFORT, choose_reliability, RELIABLE

_POLICY = {RELIABLE: ReliabilityPolicy.RELIABLE, BEST_EFFORT: ReliabilityPolicy.BEST_EFFORT}


class AdaptiveSubscription:
    """Subscribe with the reliability that matches the publishers; re-check every second."""

    def __init__(self, node, msg_type, topic: str, callback, setting: str = 'auto',
                 depth: int = 1):
        choose_reliability(setting, [])   # validates the setting early
        self.node, self.msg_type, self.topic, self.callback = node, msg_type, topic, callback
        self.setting, self.depth = setting, depth
        self.sub, self.reliability = None, None
        self.refresh()
        self._timer = node.create_timer(1.0, self.refresh)

    def refresh(self):
        resolved = self.node.resolve_topic_name(self.topic)
        offered = [RELIABLE if i.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                   else BEST_EFFORT for i in self.node.get_publishers_info_by_topic(resolved)]
        wanted = choose_reliability(self.setting, offered)
        if wanted == self.reliability:
            return
        if self.sub is not None:
            self.node.destroy_subscription(self.sub)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.depth,
                         reliability=_POLICY[wanted])
        self.sub = self.node.create_subscription(self.msg_type, self.topic, self.callback, qos)
        self.reliability = wanted
        self.node.get_logger().info(f'subscribed to {resolved} ({wanted}, depth {self.depth})')
