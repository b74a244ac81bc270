"""Rosbag reading and writing with `rosbags` (no ROS installation needed)."""
