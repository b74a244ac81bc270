"""
The discriminator of the GAN structure: it sees a pair of consecutive predictions.

Input: the class probabilities of frames t and t+k, stacked on channels. Convolutions with
spectral normalization (Miyato et al. ICLR 2018) and one self-attention block (SAGAN, Zhang
et al. ICML 2019) so that it can judge both the shape of each prediction and how the two agree
across the image; one score per pair.
"""

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _sn_conv(cin, cout, kernel=4, stride=2):
    return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2))


class SelfAttention(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.query = spectral_norm(nn.Conv2d(channels, channels // 8, 1))
        self.key = spectral_norm(nn.Conv2d(channels, channels // 8, 1))
        self.value = spectral_norm(nn.Conv2d(channels, channels, 1))
        self.gamma = nn.Parameter(torch.zeros(1))   # starts as the identity

    def forward(self, x):
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)           # (N, HW, C/8)
        k = self.key(x).flatten(2)                             # (N, C/8, HW)
        attn = torch.softmax(q @ k, dim=-1)                    # (N, HW, HW)
        v = self.value(x).flatten(2)                           # (N, C, HW)
        return x + self.gamma * (v @ attn.transpose(1, 2)).view(n, c, h, w)


class PairDiscriminator(nn.Module):
    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()
        cin = 2 * num_classes
        act = nn.LeakyReLU(0.2, inplace=True)
        self.body = nn.Sequential(
            _sn_conv(cin, width), act, _sn_conv(width, 2 * width), act,
            _sn_conv(2 * width, 4 * width), act, SelfAttention(4 * width),
            _sn_conv(4 * width, 8 * width), act)
        self.score = spectral_norm(nn.Linear(8 * width, 1))

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        """(N, 2K, H, W) -> (N,) scores; higher means 'looks like the teacher'."""
        return self.score(self.body(pair).mean(dim=(2, 3))).squeeze(1)
