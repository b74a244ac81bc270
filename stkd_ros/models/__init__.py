"""
Segmentation models: real-time students and the two-branch teacher.

Every model's ``forward(x)`` returns a dict with ``logits`` (N, K, H, W) at the input size and
``features`` (N, C, h, w), the last feature map before the classifier, which distillation
matches. The teacher adds its branches' logits and features.
"""

from stkd_ros.models.registry import build_model, MODELS

__all__ = ['build_model', 'MODELS']
