r"""Networks of (x, t) for score models: an MLP with a time embedding, and a small U-Net for images.

Both map ``(x, t)`` with ``x`` of shape ``(N, *event_shape)`` and ``t`` of shape ``(N,)`` to a tensor of
x's shape. Time enters through sinusoidal features :math:`[\sin(f_i t), \cos(f_i t)]` at geometric
frequencies :math:`f_i \in [1, f_{max}]`, so both slow and fast changes in t are easy to represent.
No BatchNorm anywhere (it would make a sample's output depend on its batch, and breaks vmap).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["TimeEmbedding", "ScoreMLP", "SmallUNet"]


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t in [0, T] followed by a learned linear map and SiLU."""

    def __init__(self, dim: int = 32, max_freq: float = 200.0, out_dim: int | None = None):
        super().__init__()
        half = max(dim // 2, 1)
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(max_freq), half)))
        self.proj = nn.Sequential(nn.Linear(2 * half, out_dim or dim), nn.SiLU())

    def forward(self, t: Tensor) -> Tensor:
        arg = t.reshape(-1, 1).to(self.freqs.dtype) * self.freqs
        return self.proj(torch.cat([arg.sin(), arg.cos()], dim=-1))


class ScoreMLP(nn.Module):
    """``[x, emb(t)] -> [Linear -> SiLU] x depth -> Linear``, with t also added to every hidden layer.

    Args:
        dim: data dimension D.
        width: hidden width; depth: hidden layers; embed_dim: time-embedding width.
    """

    def __init__(self, dim: int, width: int = 128, depth: int = 3, embed_dim: int = 32, max_freq: float = 200.0):
        super().__init__()
        if dim < 1 or width < 1 or depth < 1:
            raise ValueError(f"dim, width, depth must be positive, got {dim}, {width}, {depth}")
        self.dim = dim
        self.embed = TimeEmbedding(embed_dim, max_freq)
        self.inp = nn.Linear(dim + embed_dim, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.temb = nn.ModuleList(nn.Linear(embed_dim, width) for _ in range(depth - 1))
        self.out = nn.Linear(width, dim)
        self.act = nn.SiLU()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(shape[0], -1)
        e = self.embed(t.expand(shape[0]) if t.dim() == 0 else t)
        h = self.act(self.inp(torch.cat([x, e], dim=-1)))
        for lin, te in zip(self.hidden, self.temb):
            h = self.act(lin(h) + te(e))
        return self.out(h).reshape(shape)


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, embed_dim: int, groups: int = 8):
        super().__init__()
        self.n1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.c1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.t = nn.Linear(embed_dim, c_out)
        self.n2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.c2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.c1(self.act(self.n1(x))) + self.t(e)[:, :, None, None]
        h = self.c2(self.act(self.n2(h)))
        return h + self.skip(x)


class SmallUNet(nn.Module):
    """A two-level U-Net for small images (e.g. 8x8 digits): 8x8 -> 4x4 -> 8x8 with a skip connection.

    Args:
        channels: image channels; base: feature channels at full resolution (doubled at half);
        embed_dim: time-embedding width. Height and width must be even.
    """

    def __init__(self, channels: int = 1, base: int = 32, embed_dim: int = 64, max_freq: float = 200.0):
        super().__init__()
        self.embed = TimeEmbedding(embed_dim, max_freq)
        self.inp = nn.Conv2d(channels, base, 3, padding=1)
        self.down1 = _ResBlock(base, base, embed_dim)
        self.pool = nn.Conv2d(base, 2 * base, 3, stride=2, padding=1)
        self.mid1 = _ResBlock(2 * base, 2 * base, embed_dim)
        self.mid2 = _ResBlock(2 * base, 2 * base, embed_dim)
        self.up = nn.ConvTranspose2d(2 * base, base, 4, stride=2, padding=1)
        self.up1 = _ResBlock(2 * base, base, embed_dim)
        self.out = nn.Sequential(nn.GroupNorm(min(8, base), base), nn.SiLU(), nn.Conv2d(base, channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"SmallUNet expects (N, C, H, W) with even H, W; got {tuple(x.shape)}")
        e = self.embed(t.expand(x.shape[0]) if t.dim() == 0 else t)
        h0 = self.down1(self.inp(x), e)
        h = self.mid2(self.mid1(self.pool(h0), e), e)
        h = self.up1(torch.cat([self.up(h), h0], dim=1), e)
        return self.out(h)
