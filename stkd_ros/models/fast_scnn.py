"""
Fast-SCNN (Poudel, Liwicki, Cipolla, BMVC 2019, arXiv:1902.04502): a student built for CPUs.

Learning to downsample (1/8) feeds both a high-resolution skip and a global feature extractor
(MobileNetV2 bottlenecks to 1/32, then pyramid pooling); a feature fusion module adds the two,
and a small classifier of depthwise-separable convolutions predicts at 1/8. Only Conv, BatchNorm
(folded into the convolutions at export) and ReLU: no hard-swish or squeeze-excite, so a QDQ INT8
export quantizes every convolution (LR-ASPP MobileNetV3's hard-swish stays in float).
"""

from stkd_ros.models.blocks import ConvBNReLU, load_backbone_weights, upsample_like
from stkd_ros.models.pspnet import PyramidPooling
from torch import nn


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, dilation: int = 1,
             groups: int = 1) -> nn.Sequential:
    """Convolution and BatchNorm without an activation (a linear projection)."""
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation,
                                   groups=groups, bias=False), nn.BatchNorm2d(cout))


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise then 1x1 pointwise; the paper has no nonlinearity between the two."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(_conv_bn(cin, cin, 3, stride, groups=cin), ConvBNReLU(cin, cout, 1))


class Bottleneck(nn.Module):
    """MobileNetV2's inverted residual: expand, depthwise, linear projection, skip if it fits."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int = 6):
        super().__init__()
        mid = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(ConvBNReLU(cin, mid, 1),
                                  ConvBNReLU(mid, mid, 3, stride, groups=mid),
                                  _conv_bn(mid, cout))

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def _stage(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` bottlenecks, the first with ``stride`` (the paper's n and s)."""
    return nn.Sequential(*(Bottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                           for i in range(blocks)))


class FeatureFusion(nn.Module):
    """The 1/32 context, upsampled to 1/8, through a dilated depthwise conv, added to the skip."""

    def __init__(self, high: int, low: int, out: int, dilation: int = 4):
        super().__init__()
        # Dilation 4, the upsampling factor: the 3x3 spans neighbouring low-resolution cells.
        self.low = nn.Sequential(ConvBNReLU(low, low, 3, dilation=dilation, groups=low),
                                 _conv_bn(low, out))
        self.high = _conv_bn(high, out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, high, low):
        low = upsample_like(low, high.shape[-2:])
        return self.relu(self.high(high) + self.low(low))


class FastSCNN(nn.Module):
    """
    Fast-SCNN returning its logits at the input size and the fused 1/8 features (128 channels).

    ``pretrained``: a local file of Fast-SCNN weights (a state dict, or the weights of a
    fast_scnn model file trained on other data); every tensor whose name and shape match is
    loaded, so a classifier for another number of classes starts afresh.
    """

    def __init__(self, num_classes: int, pretrained: str = None):
        super().__init__()
        self.downsample = nn.Sequential(ConvBNReLU(3, 32, 3, stride=2),
                                        DepthwiseSeparable(32, 48, stride=2),
                                        DepthwiseSeparable(48, 64, stride=2))
        self.global_features = nn.Sequential(_stage(64, 64, 3, 2), _stage(64, 96, 3, 2),
                                             _stage(96, 128, 3, 1),
                                             PyramidPooling(128), ConvBNReLU(256, 128, 1))
        self.fusion = FeatureFusion(64, 128, 128)
        self.classifier = nn.Sequential(DepthwiseSeparable(128, 128), DepthwiseSeparable(128, 128),
                                        nn.Conv2d(128, num_classes, 1))
        if pretrained:
            load_backbone_weights(self, pretrained, 'fast_scnn')

    def forward(self, x):
        high = self.downsample(x)
        feats = self.fusion(high, self.global_features(high))
        return {'logits': upsample_like(self.classifier(feats), x.shape[-2:]), 'features': feats}
