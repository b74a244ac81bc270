"""
Adversarial losses for the discriminator that judges pairs of consecutive predictions.

Hinge (Lim and Ye 2017; SAGAN, Zhang et al. 2019) or WGAN-GP (Gulrajani et al. 2017).
"""

import torch


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, kind: str) -> torch.Tensor:
    """Loss of the discriminator: teacher pairs are real, student pairs fake; scores (N,)."""
    if kind == 'hinge':
        return torch.relu(1.0 - d_real).mean() + torch.relu(1.0 + d_fake).mean()
    if kind == 'wgan-gp':
        return d_fake.mean() - d_real.mean()
    raise ValueError(f'unknown GAN loss {kind!r}; expected hinge or wgan-gp')


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Return the student's adversarial loss (hinge and WGAN alike): raise the fake score."""
    return -d_fake.mean()


def gradient_penalty(discriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: (||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake inputs."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()
