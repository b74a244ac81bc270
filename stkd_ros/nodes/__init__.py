"""
ROS 2 nodes: thin rclpy layers over the ROS-free modules beside them.

Only the ``*_node.py`` / node modules import rclpy; the frame slot, statistics and QoS
choice are plain Python with plain tests, and message conversion is ``stkd_ros.image_msgs``
(shared with ``stkd_ros.bag``).
"""
