"""Classical CPU flow from OpenCV: DIS (the default: fast, no weights) and Farneback."""

import cv2
import numpy as np
from stkd_ros.errors import InputError
from stkd_ros.flow.base import FlowEstimator

_DIS_PRESETS = {
    'ultrafast': cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    'fast': cv2.DISOPTICAL_FLOW_PRESET_FAST,
    'medium': cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


class _GrayFlow(FlowEstimator):
    """OpenCV's estimators see gray frames: each frame is converted once, also both ways."""

    def on_gray(self, gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def estimate(self, img0, img1):
        return self.on_gray(_gray(img0), _gray(img1))

    def estimate_both(self, img0, img1):
        gray0, gray1 = _gray(img0), _gray(img1)
        return self.on_gray(gray0, gray1), self.on_gray(gray1, gray0)


class DISFlow(_GrayFlow):
    """Dense Inverse Search (Kroeger et al. ECCV 2016) as implemented by OpenCV."""

    name = 'dis'

    def __init__(self, preset: str = 'medium', finest_scale: int = None):
        if preset not in _DIS_PRESETS:
            raise InputError(f'unknown DIS preset {preset!r}; expected one of '
                             f'{sorted(_DIS_PRESETS)}')
        self.preset, self.finest_scale = preset, finest_scale
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
        self._dis.setUseSpatialPropagation(True)
        # The presets stop 2 (fast) or 1 (medium) octaves above the frame: fine on camera
        # frames, blind to a small object's motion on a model's small output grid.
        if finest_scale is not None:
            self._dis.setFinestScale(finest_scale)

    def settings(self):
        extra = {} if self.finest_scale is None else {'finest_scale': self.finest_scale}
        return {'preset': self.preset, **extra}

    def on_gray(self, gray0, gray1):
        return self._dis.calc(gray0, gray1, None)


class FarnebackFlow(_GrayFlow):
    """Polynomial-expansion flow (Farneback, SCIA 2003)."""

    name = 'farneback'

    def __init__(self, levels: int = 4, winsize: int = 15, iterations: int = 3):
        self.levels, self.winsize, self.iterations = levels, winsize, iterations

    def settings(self):
        return {'levels': self.levels, 'winsize': self.winsize, 'iterations': self.iterations}

    def on_gray(self, gray0, gray1):
        return cv2.calcOpticalFlowFarneback(
            gray0, gray1, None, pyr_scale=0.5, levels=self.levels,
            winsize=self.winsize, iterations=self.iterations, poly_n=5, poly_sigma=1.1,
            flags=0)
