"""
PSPNet (Zhao et al. CVPR 2017) on a dilated ResNet-18: the student of SKD, ETC and CIRKD.

The ResNet runs at output stride 8 (dilation in the last two stages), from timm.
"""

from stkd_ros.models.blocks import ConvBNReLU, load_backbone_weights, upsample_like
import timm
import torch
from torch import nn


def _pool_matrix(size: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """(bins, size) matrix whose rows average the cells adaptive pooling would average."""
    mat = torch.zeros(bins, size, dtype=like.dtype, device=like.device)
    for i in range(bins):
        lo, hi = (i * size) // bins, -((-(i + 1) * size) // bins)
        mat[i, lo:hi] = 1.0 / (hi - lo)
    return mat


def adaptive_avg_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """
    Adaptive average pooling written as two matrix products.

    It equals ``nnf.adaptive_avg_pool2d`` and exports to ONNX for any input size (the ONNX
    exporter rejects output sizes that do not divide the input).
    """
    h, w = x.shape[-2:]
    return _pool_matrix(int(h), bins, x) @ x @ _pool_matrix(int(w), bins, x).t()


class PyramidPooling(nn.Module):
    """Pool at several grid sizes, project, upsample and concatenate with the input."""

    def __init__(self, cin: int, bins=(1, 2, 3, 6)):
        super().__init__()
        self.bins = bins
        self.stages = nn.ModuleList(ConvBNReLU(cin, cin // len(bins), 1) for _ in bins)

    def forward(self, x):
        h, w = x.shape[-2:]
        pooled = [upsample_like(stage(adaptive_avg_pool(x, b)), (h, w))
                  for b, stage in zip(self.bins, self.stages)]
        return torch.cat([x] + pooled, dim=1)


class PSPNetResNet18(nn.Module):
    def __init__(self, num_classes: int, pretrained: str = None, backbone: str = 'resnet18',
                 output_stride: int = 8):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, features_only=True,
                                          output_stride=output_stride, out_indices=(4,))
        if pretrained:
            load_backbone_weights(self.backbone, pretrained, backbone)
        cin = self.backbone.feature_info.channels()[-1]
        self.ppm = PyramidPooling(cin)
        width = 256 if cin <= 512 else 512
        self.bottleneck = ConvBNReLU(2 * cin, width, 3)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        feats = self.bottleneck(self.ppm(self.backbone(x)[-1]))
        return {'logits': upsample_like(self.classifier(feats), x.shape[-2:]), 'features': feats}
