"""Flow as a colour image: hue is the direction, saturation the speed (Baker et al. 2011)."""

import cv2
import numpy as np


def flow_to_color(flow: np.ndarray, max_magnitude: float = None) -> np.ndarray:
    """HxWx2 flow -> HxWx3 uint8 RGB; white is still, full colour is ``max_magnitude`` pixels."""
    magnitude, angle = cv2.cartToPolar(flow[..., 0].astype(np.float32),
                                       flow[..., 1].astype(np.float32))
    top = max_magnitude or float(np.percentile(magnitude, 99)) or 1.0
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (angle * (90.0 / np.pi)).astype(np.uint8)
    hsv[..., 1] = np.clip(magnitude / top * 255.0, 0, 255).astype(np.uint8)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
