"""
Adversarial losses for the discriminator that judges pairs of consecutive predictions.

Hinge loss (Lim and Ye 2017), as SAGAN (Zhang et al. 2019) trains its spectrally normalized
discriminator.
"""

import torch


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Loss of the discriminator: teacher pairs are real, student pairs fake; scores (N,)."""
    return torch.relu(1.0 - d_real).mean() + torch.relu(1.0 + d_fake).mean()


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Return the student's adversarial loss: raise the score of its own pairs."""
    return -d_fake.mean()
