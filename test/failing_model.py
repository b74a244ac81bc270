"""
A real model file whose forward pass fails on marked frames, for the node's failure tests.

The tiny student of model_helpers, exported by `stkd export`'s code to ONNX, with one check
spliced in after its logits: when every input value (normalized) exceeds ``fail_above``, the
final Reshape asks for one row more than the logits hold, and ONNX Runtime raises inside the
Segmenter's forward pass, as a model that cannot run on a frame does. An all-white frame
(255 everywhere: about 2.25 after normalization) is the mark; ``fail_above=-inf`` fails on
every frame.
"""

from model_helpers import tiny_model_file
import numpy as np
import onnx
from onnx import helper, numpy_helper
from stkd_ros.commands.export import export_onnx

MARKED = 2.2   # below an all-white frame's darkest normalized value, above any real frame's


def failing_onnx(directory, fail_above: float = MARKED):
    """Write ``directory``/failing.onnx; return its path."""
    path = export_onnx(tiny_model_file(directory / 'student.safetensors', seed=0),
                       directory / 'failing.onnx')
    model = onnx.load(str(path))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ['raw_logits' if name == 'logits' else name for name in node.output]
    graph.node.extend([
        helper.make_node('ReduceMin', ['image'], ['darkest'], keepdims=0),
        helper.make_node('Constant', [], ['limit'],
                         value=numpy_helper.from_array(np.float32(fail_above))),
        helper.make_node('Greater', ['darkest', 'limit'], ['marked']),
        helper.make_node('Cast', ['marked'], ['one_if_marked'], to=onnx.TensorProto.INT64),
        helper.make_node('Shape', ['raw_logits'], ['shape']),
        helper.make_node('Constant', [], ['one_more_row'],
                         value=numpy_helper.from_array(np.array([0, 0, 1, 0], np.int64))),
        helper.make_node('Mul', ['one_more_row', 'one_if_marked'], ['grow']),
        helper.make_node('Add', ['shape', 'grow'], ['asked']),
        helper.make_node('Reshape', ['raw_logits', 'asked'], ['logits']),
    ])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))   # the stkd metadata is kept
    return path
