"""Optical flow between frames, and warping of images, logits and labels along it."""

from stkd_ros.flow.base import build_flow, FLOW_METHODS, FlowEstimator

__all__ = ['build_flow', 'FLOW_METHODS', 'FlowEstimator']
