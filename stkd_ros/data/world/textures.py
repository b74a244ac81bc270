"""
Procedural texture tiles, anchored to surfaces in metres so that they move with the scene.

Tiles are periodic 64x64 patterns in [-1, 1], built once from a fixed seed: the world's look is
the same on every machine, and the per-clip randomness lives in the scene layout and colours.
"""

from functools import lru_cache

import numpy as np

TILE = 64
GRAIN, SLABS, WINDOWS, FOLIAGE, GRID, SMOOTH, STRIPES = range(7)


def _periodic_noise(rng, sigma):
    """Gaussian noise low-passed in the Fourier domain, so the tile repeats without seams."""
    noise = rng.standard_normal((TILE, TILE))
    freq = np.fft.fftfreq(TILE)
    gain = np.exp(-2 * (np.pi * sigma) ** 2 * (freq[:, None] ** 2 + freq[None, :] ** 2))
    noise = np.real(np.fft.ifft2(np.fft.fft2(noise) * gain)).astype(np.float32)
    return noise / (np.abs(noise).max() + 1e-6)


def _grid(period, width):
    coords = np.arange(TILE)
    lines = (coords % period) < width
    return np.logical_or(lines[:, None], lines[None, :]).astype(np.float32)


@lru_cache(maxsize=1)
def texture_tiles() -> np.ndarray:
    """Return the flattened texture atlas: (7 * 64 * 64,) float32 in [-1, 1]."""
    rng = np.random.default_rng(20221)
    grain = _periodic_noise(rng, 0.7)
    slabs = 0.5 * _periodic_noise(rng, 1.0) - 0.9 * _grid(32, 2)
    windows = np.full((TILE, TILE), 0.35, np.float32)
    windows[12:40, 8:26] = -1.0   # two windows per bay, one storey per tile
    windows[12:40, 38:56] = -1.0
    windows[44:48, :] = 0.8       # ledge between storeys
    windows += 0.15 * _periodic_noise(rng, 0.5)
    foliage = _periodic_noise(rng, 2.5) + 0.4 * _periodic_noise(rng, 0.6)
    grid = 1.6 * _grid(8, 1) - 0.8
    smooth = _periodic_noise(rng, 6.0)
    stripes = np.repeat(np.sign(np.sin(np.arange(TILE) * 2 * np.pi / 16)), TILE)
    stripes = stripes.reshape(TILE, TILE).astype(np.float32) * 0.6
    atlas = np.stack([grain, slabs, windows, foliage, grid, smooth, stripes])
    return np.clip(atlas, -1.0, 1.0).astype(np.float32).ravel()
