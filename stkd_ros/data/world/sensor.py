"""
Camera effects applied after rendering: exposure, vignetting, blur, noise, JPEG.

They make the pixel values disagree from frame to frame while the labels do not, which is what
makes a small per-frame model flicker.
"""

from functools import lru_cache

import cv2
import numpy as np


@lru_cache(maxsize=4)
def _vignette(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (height / 2)) ** 2
    return np.repeat((1.0 - 0.18 * r2)[..., None], 3, axis=2).astype(np.float32)


@lru_cache(maxsize=4)
def _noise_bank(height: int, width: int) -> np.ndarray:
    """Return fixed Gaussian noise (x16, int16) twice the frame size; frames crop it."""
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((2 * height, 2 * width, 3)) * 16.0
    return np.clip(noise, -127, 127).astype(np.int16)


def apply_sensor(albedo: np.ndarray, *, gain: float, difficulty: float, shake_px: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Turn a linear HxWx3 albedo (0..1) into the uint8 RGB frame a camera would deliver."""
    h, w = albedo.shape[:2]
    frame = cv2.convertScaleAbs(cv2.multiply(albedo, _vignette(h, w), scale=255.0 * gain))
    blur = 1 + int(round(shake_px * difficulty))
    if blur > 1:
        frame = cv2.blur(frame, (blur, max(1, blur // 2)))
    sigma = 1.0 + 6.0 * difficulty   # grey levels
    dy, dx = rng.integers(0, h), rng.integers(0, w)
    noise = _noise_bank(h, w)[dy:dy + h, dx:dx + w]
    frame = cv2.add(frame.astype(np.int16), cv2.multiply(noise, sigma / 16.0),
                    dtype=cv2.CV_8U)
    quality = int(round(95 - 60 * difficulty))
    if quality < 95:
        # Encode as BGR so the codec's chroma subsampling acts on the right channels.
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        frame = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return frame
