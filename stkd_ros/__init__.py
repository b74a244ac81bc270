"""stkd_ros: real-time semantic segmentation that is stable from frame to frame, for ROS 2."""

__version__ = '0.1.0'
