"""Standardised network inputs (``model.input_scale = "auto"``, ``sciml/pinn/inputs.py``): the statistics
against their closed forms, and the parametrisation against an MLP fed standardised inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call

from problems.pdes import allen_cahn
from sciml.nn import MLP
from sciml.pinn.inputs import input_statistics, standardised_parametrisation
from sciml.pinn.problem import Ball, Box, StationaryProblem
from sciml.pinn.sampling import RadialUniformBall, UniformBall

F64 = torch.float64


@pytest.mark.parametrize("d", [3, 10, 100])
def test_ball_statistics_match_the_samplers_second_moments(d):
    """E[x_i^2] = E[r^2]/d: 1/(3d) for radii uniform in [0, 1], 1/(d + 2) for volume-uniform points."""
    prob = allen_cahn(0.0, d)  # t in (0, 1): the network sees t - 1/2
    m, s = input_statistics(prob, RadialUniformBall(), t_shift=0.5, dtype=F64)
    assert m.shape == s.shape == (d + 1,)
    assert torch.all(m == 0)
    assert s[0].item() == pytest.approx(1 / math.sqrt(12), rel=1e-12)
    assert torch.allclose(s[1:], torch.full((d,), 1 / math.sqrt(3 * d), dtype=F64), rtol=1e-2)
    _, s_vol = input_statistics(prob, UniformBall(), t_shift=0.5, dtype=F64)
    assert torch.allclose(s_vol[1:], torch.full((d,), 1 / math.sqrt(d + 2), dtype=F64), rtol=1e-2)


def test_box_and_centred_ball_statistics_are_exact():
    box = StationaryProblem(name="box", domain=Box(low=(0.0, -2.0), high=(1.0, 4.0)), operator=lambda du, x: du.lap,
                            rhs=lambda x: x[..., 0] * 0, boundary=lambda x: x[..., 0] * 0)
    m, s = input_statistics(box, UniformBall(), dtype=F64)
    assert torch.allclose(m, torch.tensor([0.5, 1.0], dtype=F64))
    assert torch.allclose(s, torch.tensor([1.0, 6.0], dtype=F64) / math.sqrt(12))
    ball = StationaryProblem(name="ball", domain=Ball(d=2, center=(3.0, -1.0), radius=2.0), operator=lambda du, x: du.lap,
                             rhs=lambda x: x[..., 0] * 0, boundary=lambda x: x[..., 0] * 0)
    m, s = input_statistics(ball, UniformBall(), dtype=F64)
    assert torch.allclose(m, torch.tensor([3.0, -1.0], dtype=F64))
    assert torch.allclose(s, torch.full((2,), math.sqrt(4 * 2 / 4 / 2), dtype=F64), rtol=1e-2)  # R^2 d/(d+2)/d


def _pair(seed=0):
    torch.manual_seed(seed)
    net = MLP(5, 1, widths=(16, 16), activation="tanh").to(F64)
    mean = torch.tensor([0.3, -1.0, 0.0, 2.0, 0.5], dtype=F64)
    std = torch.tensor([0.1, 2.0, 0.05, 1.0, 0.3], dtype=F64)
    return net, mean, std


def test_the_parametrisation_is_the_mlp_on_standardised_inputs():
    net, mean, std = _pair()
    par = standardised_parametrisation(net, mean, std)
    y = mean + std * torch.randn(300, 5, dtype=F64)
    got = functional_call(net, par.params(), (y,))
    ref = net((y - mean) / std)  # the module's own weights act on z
    assert (got - ref).abs().max() < 1e-12
    assert set(par.params()) == {k for k, _ in net.named_parameters()}  # a plain MLP's parameters


def test_adam_on_the_parametrisation_equals_adam_on_standardised_inputs():
    """What makes it a preconditioner, not a reparametrisation Adam undoes: the trajectories coincide."""
    net, mean, std = _pair()
    twin, _, _ = _pair()
    par = standardised_parametrisation(net, mean, std)
    y = mean + std * torch.randn(200, 5, dtype=F64)
    target = torch.sin(y.sum(1, keepdim=True))
    opt_a = torch.optim.Adam(list(par.theta.values()), lr=1e-2)
    opt_b = torch.optim.Adam(twin.parameters(), lr=1e-2)
    for _ in range(20):
        for opt, out in ((opt_a, lambda: functional_call(net, par.params(), (y,))),
                         (opt_b, lambda: twin((y - mean) / std))):
            opt.zero_grad()
            ((out() - target) ** 2).mean().backward()
            opt.step()
    assert (functional_call(net, par.params(), (y,)) - twin((y - mean) / std)).abs().max() < 1e-9
    # raw inputs under the same Adam steps follow another trajectory
    raw, _, _ = _pair()
    opt_c = torch.optim.Adam(raw.parameters(), lr=1e-2)
    for _ in range(20):
        opt_c.zero_grad()
        ((raw(y) - target) ** 2).mean().backward()
        opt_c.step()
    assert (raw((y - mean) / std) - twin((y - mean) / std)).abs().max() > 1e-3


@pytest.mark.parametrize("sampler", [UniformBall(), RadialUniformBall()])
def test_interior_radii_are_never_zero_even_when_rand_returns_zero(sampler, monkeypatch):
    """torch.rand draws from [0, 1) and does return exact zeros (about one float32 draw in 2^24); a radius
    of exactly 0 put a point at the centre, where the linear parabolic family's right-hand side is infinite
    (a loss of 1e24 that froze Adam for the rest of a 3,000-step run). Forcing every draw to 0, no radius is
    0 and every radius stays in the ball; other draws are untouched."""
    ball = Ball(d=10, radius=1.0)
    monkeypatch.setattr(torch, "rand", lambda n, **kw: torch.zeros(n, dtype=kw.get("dtype")))
    r = sampler.radii(64, ball, None, "cpu", torch.float32)
    assert bool((r > 0).all()) and bool((r <= 1.0).all())
    monkeypatch.setattr(torch, "rand", lambda n, **kw: torch.full((n,), 0.25, dtype=kw.get("dtype")))
    r = sampler.radii(4, ball, None, "cpu", torch.float32)
    want = 0.25 ** 0.1 if isinstance(sampler, UniformBall) else 0.25
    assert torch.allclose(r, torch.full((4,), want))
