"""LR-ASPP on MobileNetV3-Large (Howard et al. ICCV 2019), torchvision's implementation."""

from stkd_ros.models.blocks import load_backbone_weights, upsample_like
from torch import nn
from torchvision.models.segmentation import lraspp_mobilenet_v3_large


class LRASPPMobileNetV3(nn.Module):
    """torchvision's LR-ASPP, returning its logits and the backbone's high-level features."""

    def __init__(self, num_classes: int, pretrained: str = None):
        super().__init__()
        net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                        num_classes=num_classes)
        self.backbone, self.head = net.backbone, net.classifier
        # torchvision builds MobileNetV3 with batch-norm momentum 0.01, tuned for long
        # ImageNet schedules; over a few hundred steps the running statistics then still
        # remember the first, random-weight batches and evaluation collapses (seen here:
        # 0.07 mIoU in eval mode vs 0.90 pixel accuracy in train mode). 0.1 is PyTorch's default.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        if pretrained:
            # A torchvision mobilenet_v3_large state dict keeps the backbone under 'features.'.
            load_backbone_weights(self.backbone, pretrained, 'mobilenet_v3_large', 'features.')

    def forward(self, x):
        feats = self.backbone(x)
        logits = upsample_like(self.head(feats), x.shape[-2:])
        return {'logits': logits, 'features': feats['high']}
