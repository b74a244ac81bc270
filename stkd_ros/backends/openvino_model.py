"""
The OpenVINO backend (CPU): an ONNX export, FP32 or ``stkd export --int8``'s QDQ, compiled.

OpenVINO runs a QDQ model's quantized operations in INT8 (VNNI) and the rest at its inference
precision: bfloat16 where the CPU has it (AVX-512 BF16 or AMX; OpenVINO's own default there),
else float32. ``precision`` chooses: 'bf16' or 'f32'; None takes bf16 where the CPU has it.
The metadata is the ONNX file's ``stkd`` entry, which OpenVINO keeps in the model's
``rt_info`` under ``framework``.
"""

from collections import Counter
import threading

import numpy as np
import openvino as ov
from stkd_ros.backends.onnx_file import NumpyOutputs, open_onnx
from stkd_ros.errors import InputError
from stkd_ros.model_meta import KEY

PRECISIONS = {'bf16': ov.Type.bf16, 'f32': ov.Type.f32}


def cpu_has_bf16(core: ov.Core) -> bool:
    return 'BF16' in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')


class OpenVINOModel(NumpyOutputs):
    """A model compiled for the CPU; each thread that runs it has its own infer request."""

    def __init__(self, compiled, precision: str):
        self.compiled, self.precision = compiled, precision
        self._local = threading.local()   # segment_node's workers run it concurrently

    @classmethod
    def load(cls, path, threads: int = 0, precision: str = None):
        """Compile the ONNX file at ``path``; returns (backend, the stkd metadata it carries)."""
        core = ov.Core()
        if precision is None:
            precision = 'bf16' if cpu_has_bf16(core) else 'f32'
        elif precision not in PRECISIONS:
            raise InputError(f'openvino precision must be one of {tuple(PRECISIONS)}, got '
                             f'{precision!r}')
        elif precision == 'bf16' and not cpu_has_bf16(core):
            raise InputError('openvino precision bf16: this CPU has no bfloat16 instructions '
                             '(AVX-512 BF16 or AMX); use f32')
        config = {ov.properties.hint.inference_precision: PRECISIONS[precision],
                  ov.properties.hint.performance_mode: ov.properties.hint.PerformanceMode.LATENCY}
        if threads:
            config[ov.properties.inference_num_threads] = threads

        def read(file):
            # The ONNX frontend alone: Core.read_model would try every framework's on a bad file.
            onnx = ov.frontend.FrontEndManager().load_by_framework('onnx')
            model = onnx.convert(onnx.load(file))
            found = model.has_rt_info(['framework', KEY])
            raw = model.get_rt_info(['framework', KEY]).astype(str) if found else None
            return core.compile_model(model, 'CPU', config), raw

        compiled, meta = open_onnx(path, read)
        return cls(compiled, precision), meta

    def layer_precisions(self, layer_type: str = 'Convolution') -> Counter:
        """How many layers of ``layer_type`` the compiled model runs at each precision."""
        return Counter(op.get_rt_info()['runtimePrecision'].astype(str)
                       for op in self.compiled.get_runtime_model().get_ordered_ops()
                       if op.get_rt_info()['layerType'].astype(str) == layer_type)

    def run(self, x: np.ndarray) -> np.ndarray:
        request = getattr(self._local, 'request', None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        # share_outputs=False: the logits are a copy, not the request's buffer that the next
        # frame overwrites.
        return request.infer({0: x}, share_inputs=True, share_outputs=False)[0]
