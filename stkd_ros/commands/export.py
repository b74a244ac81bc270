"""`stkd export`: check a model file and write an ONNX model with the same metadata."""

import json
import logging
from pathlib import Path

from stkd_ros.model_file import load_model_file
from stkd_ros.model_meta import KEY
import torch
from torch import nn

log = logging.getLogger(__name__)


class LogitsOnly(nn.Module):
    """What deployment needs from a model: the logits tensor alone."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)['logits']


def export_onnx(model_path, onnx_path, opset: int = 17) -> Path:
    """Export at the model's input size; the stkd metadata goes into the ONNX metadata."""
    model, meta = load_model_file(model_path)
    h, w = meta['input_size']
    dummy = torch.zeros(1, 3, h, w)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(LogitsOnly(model).eval(), (dummy,), str(onnx_path), dynamo=False,
                      input_names=['image'], output_names=['logits'], opset_version=opset,
                      dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}})
    write_metadata(onnx_path, meta)
    log.info('wrote %s (%dx%d input)', onnx_path, h, w)
    return onnx_path


def write_metadata(onnx_path, meta: dict, source=None):
    """Store ``meta`` as the ONNX file's ``stkd`` entry (what the Segmenter reads)."""
    import onnx
    proto = onnx.load(str(source or onnx_path))
    props = {p.key: p.value for p in proto.metadata_props}
    props[KEY] = json.dumps(meta)
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(onnx_path))
