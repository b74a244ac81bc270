"""
A two-branch real-time network in the style of BiSeNetV2 (Yu et al. IJCV 2021).

A wide, shallow detail branch keeps spatial detail at 1/8 resolution; a semantic branch (a
MobileNetV3 from timm, 1/16 and 1/32) brings context; a guided aggregation layer fuses them,
each branch gating the other.
"""

from stkd_ros.models.blocks import ConvBNReLU, load_backbone_weights, upsample_like
import timm
import torch
from torch import nn


class DetailBranch(nn.Sequential):
    def __init__(self, width: int = 64):
        super().__init__(
            ConvBNReLU(3, width, stride=2), ConvBNReLU(width, width),
            ConvBNReLU(width, width, stride=2), ConvBNReLU(width, width),
            ConvBNReLU(width, 2 * width, stride=2), ConvBNReLU(2 * width, 2 * width))


class GuidedAggregation(nn.Module):
    """Detail features gated by upsampled context, plus context gated by detail."""

    def __init__(self, width: int):
        super().__init__()
        self.detail_keep = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False)
        self.detail_down = nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1,
                                                   bias=False), nn.BatchNorm2d(width),
                                         nn.AvgPool2d(3, stride=2, padding=1))
        self.context_gate = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False),
                                          nn.BatchNorm2d(width))
        self.context_keep = nn.Conv2d(width, width, 1, bias=False)
        self.out = ConvBNReLU(width, width)

    def forward(self, detail, context):
        gate_up = torch.sigmoid(upsample_like(self.context_gate(context), detail.shape[-2:]))
        left = self.detail_keep(detail) * gate_up
        down = self.detail_down(detail)
        right = self.context_keep(upsample_like(context, down.shape[-2:])) * torch.sigmoid(down)
        return self.out(left + upsample_like(right, detail.shape[-2:]))


class BiSeNetLite(nn.Module):
    def __init__(self, num_classes: int, pretrained: str = None,
                 semantic: str = 'mobilenetv3_large_100', width: int = 64):
        super().__init__()
        self.detail = DetailBranch(width)
        self.semantic = timm.create_model(semantic, pretrained=False, features_only=True,
                                          out_indices=(3, 4))
        if pretrained:
            load_backbone_weights(self.semantic, pretrained, semantic)
        c16, c32 = self.semantic.feature_info.channels()
        ch = 2 * width
        self.ctx16, self.ctx32 = ConvBNReLU(c16, ch, 1), ConvBNReLU(c32, ch, 1)
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNReLU(c32, ch, 1))
        self.fuse = GuidedAggregation(ch)
        self.classifier = nn.Sequential(ConvBNReLU(ch, ch), nn.Conv2d(ch, num_classes, 1))

    def forward(self, x):
        detail = self.detail(x)
        f16, f32 = self.semantic(x)
        context = self.ctx32(f32) + self.global_context(f32)
        context = self.ctx16(f16) + upsample_like(context, f16.shape[-2:])
        feats = self.fuse(detail, context)
        return {'logits': upsample_like(self.classifier(feats), x.shape[-2:]), 'features': feats}
