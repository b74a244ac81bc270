"""
The teacher: a CNN branch and a transformer branch, fused by a learned per-pixel gate.

- CNN branch: DeepLabV3+ (Chen et al. ECCV 2018) on a timm ResNet at output stride 16: local
  detail and texture.
- Transformer branch: a hierarchical PVTv2 (Wang et al. CVMJ 2022) from timm with a SegFormer
  (Xie et al. NeurIPS 2021) all-MLP decoder: global context.
- Fusion: both decoders' features are projected to one width; a gate computed from both picks,
  per pixel, how much of each to use; a classifier reads the fused features. Each branch keeps
  its own classifier and is supervised too.
"""

from stkd_ros.errors import InputError
from stkd_ros.models.blocks import ConvBNReLU, load_backbone_weights, upsample_like
import timm
import torch
from torch import nn

#: Backbone pairs by size: tiny for tests and the synthetic world on a CPU, full for real data.
TEACHER_SIZES = {
    'tiny': ('resnet18', 'pvt_v2_b0', 64),
    'small': ('resnet50', 'pvt_v2_b1', 128),
    'base': ('resnet50', 'pvt_v2_b2', 256),
    'full': ('resnet101', 'pvt_v2_b3', 256),
}


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates=(6, 12, 18)):
        super().__init__()
        self.branches = nn.ModuleList([ConvBNReLU(cin, cout, 1)]
                                      + [ConvBNReLU(cin, cout, 3, dilation=r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNReLU(cin, cout, 1))
        self.project = ConvBNReLU(cout * (len(rates) + 2), cout, 1)

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        outs.append(upsample_like(self.pool(x), x.shape[-2:]))
        return self.project(torch.cat(outs, 1))


class DeepLabV3PlusBranch(nn.Module):
    def __init__(self, backbone: str, width: int, pretrained: str = None):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, features_only=True,
                                          output_stride=16, out_indices=(1, 4))
        if pretrained:
            load_backbone_weights(self.backbone, pretrained, backbone)
        c_low, c_high = self.backbone.feature_info.channels()
        self.aspp = ASPP(c_high, width)
        self.low = ConvBNReLU(c_low, max(width // 4, 16), 1)
        self.decode = nn.Sequential(ConvBNReLU(width + max(width // 4, 16), width),
                                    ConvBNReLU(width, width))

    def forward(self, x):
        low, high = self.backbone(x)
        ctx = upsample_like(self.aspp(high), low.shape[-2:])
        return self.decode(torch.cat([ctx, self.low(low)], 1))   # 1/4 resolution


class SegFormerBranch(nn.Module):
    def __init__(self, backbone: str, width: int, pretrained: str = None):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, features_only=True)
        if pretrained:
            load_backbone_weights(self.backbone, pretrained, backbone)
        self.project = nn.ModuleList(nn.Conv2d(c, width, 1)
                                     for c in self.backbone.feature_info.channels())
        self.fuse = ConvBNReLU(width * len(self.project), width, 1)

    def forward(self, x):
        feats = self.backbone(x)
        size = feats[0].shape[-2:]
        return self.fuse(torch.cat([upsample_like(p(f), size)
                                    for p, f in zip(self.project, feats)], 1))   # 1/4


class Teacher(nn.Module):
    def __init__(self, num_classes: int, size: str = 'tiny', pretrained_cnn: str = None,
                 pretrained_transformer: str = None):
        super().__init__()
        if size not in TEACHER_SIZES:
            raise InputError(f'unknown teacher size {size!r}; expected one of '
                             f'{list(TEACHER_SIZES)}')
        cnn, transformer, width = TEACHER_SIZES[size]
        self.cnn = DeepLabV3PlusBranch(cnn, width, pretrained_cnn)
        self.transformer = SegFormerBranch(transformer, width, pretrained_transformer)
        self.gate = nn.Sequential(ConvBNReLU(2 * width, width), nn.Conv2d(width, 1, 1))
        self.fused = nn.Sequential(ConvBNReLU(width, width), nn.Conv2d(width, num_classes, 1))
        self.cnn_head = nn.Conv2d(width, num_classes, 1)
        self.transformer_head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        f_cnn = self.cnn(x)
        f_tr = upsample_like(self.transformer(x), f_cnn.shape[-2:])
        gate = torch.sigmoid(self.gate(torch.cat([f_cnn, f_tr], 1)))
        fused = gate * f_cnn + (1 - gate) * f_tr
        size = x.shape[-2:]
        return {'logits': upsample_like(self.fused(fused), size), 'features': fused,
                'cnn_logits': upsample_like(self.cnn_head(f_cnn), size), 'cnn_features': f_cnn,
                'transformer_logits': upsample_like(self.transformer_head(f_tr), size),
                'transformer_features': f_tr}
