"""The Hamiltonian start (sciml.conservation.hamiltonian): the observed energy gradient against the exact one,
the in-span test against exact spans, the Yukawa energy found with it and missed without it, no start on
non-canonical data, and kill-and-resume through a Hamiltonian-start candidate."""

from __future__ import annotations

import pytest
import torch

import sciml
from problems.systems import get_system
from sciml.conservation import Deflation, DiscoveryConfig
from sciml.conservation.checks import span_check
from sciml.conservation.hamiltonian import energy_in_span, hamiltonian_state, observed_energy_gradient
from sciml.conservation.losses import orthonormal_span
from sciml.dynamics import simulate
from sciml.run import Status, load_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _grad(f, x):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x).sum(), x)
    return g.detach()


def _yukawa_points(n_traj=16, n_times=200):
    s = get_system("yukawa")
    tr = simulate(s, n_traj, n_times, 0.1, generator=torch.Generator().manual_seed(0))
    m = Deflation.build(DiscoveryConfig(library_degree=0), tr, device=torch.device("cpu"))
    return s, m.data


def test_observed_gradient_is_the_energy_gradient():
    """(-pdot, qdot) from the finite-difference velocities equals grad H of the Yukawa energy (exact
    autograd) to the velocities' accuracy: median relative error below 1e-4 (measured 5.8e-6; 2e-3 at the
    worst pericentre point at dt = 0.1), and the same map applied to the Richardson error estimate gives the
    actual error (median ratio measured 0.996; required within a factor 2)."""
    s, d = _yukawa_points()
    g_obs = observed_energy_gradient(d.train.v, 2)
    g = _grad(s.invariants["H"], d.train.x)
    rel = (g_obs - g).norm(dim=-1) / g.norm(dim=-1)
    assert float(rel.median()) < 1e-4
    e = observed_energy_gradient(d.train.err, 2).norm(dim=-1)
    ok = torch.isfinite(e) & (e > 0)
    ratio = ((g_obs - g).norm(dim=-1)[ok] / e[ok]).median()
    assert 0.5 < float(ratio) < 2


def test_energy_in_span_against_exact_spans():
    """In span when the earlier laws' gradients include grad H (H itself, or H and L); not with L alone
    (the Yukawa energy's gradient is nearly parallel to L's on these orbits, median sin^2 0.07, yet far
    above the velocities' accuracy); never with no earlier law."""
    s, d = _yukawa_points()
    x, z = d.train.x, d.scale
    gH, gL = _grad(s.invariants["H"], x) * z, _grad(s.invariants["L"], x) * z
    Q = lambda *gs: orthonormal_span(torch.stack(gs, -1))  # noqa: E731
    v, err = d.train.v, d.train.err
    assert energy_in_span(v, err, Q(gH), 2, z)
    assert energy_in_span(v, err, Q(gL, gH), 2, z)
    assert not energy_in_span(v, err, Q(gL), 2, z)
    assert not energy_in_span(v, err, x.new_zeros(len(x), 4, 0), 2, z)
    assert not energy_in_span(v, None, Q(gH), 2, z)   # no error estimate: cannot tell, so offer the start


def test_yukawa_energy_found_with_the_hamiltonian_start_and_missed_without():
    """Planar Yukawa motion (48 trajectories x 200 snapshots): L is an exact quadratic from the library; the
    energy |p|^2/2 - exp(-r/2)/r is in no library, and every random or library start settles on an
    approximate integral above the count's factor of its floor (measured 351x on a 2-core Xeon, 12x on a
    2-core EPYC: the float paths differ). The Hamiltonian start wins the warm-up and the count is 2,
    spanning H and L; with it off (hamiltonian_steps = 0) the count is 1."""
    s = get_system("yukawa")
    tr = simulate(s, 48, 200, 0.1, generator=torch.Generator().manual_seed(0))
    X = tr.X
    on = sciml.fit(Deflation, DiscoveryConfig(max_laws=2, steps=1500), tr).payload
    assert on.n_conserved == 2
    assert [f.stats["start"] for f in on.fits] == ["exact polynomial", "hamiltonian"]
    ratio = on.fits[1].stats["median"] / on.fits[1].stats["floor_loss"]
    assert ratio < 10 ** 0.75
    rep = span_check(on.laws, s.invariants, X[on.split[1]].reshape(-1, 4))
    assert rep.spans() and round(rep.rank_joint) == 2
    off = sciml.fit(Deflation, DiscoveryConfig(max_laws=2, steps=1500, hamiltonian_steps=0), tr).payload
    assert off.n_conserved == 1
    assert off.fits[1].stats["median"] / off.fits[1].stats["floor_loss"] > 10 ** 0.75  # refused by the floor rule


def test_no_hamiltonian_start_without_a_canonical_layout():
    """SIR in (S, I) is not canonical (no n_dof): no fit and no extra initialisation."""
    tr = simulate(get_system("sir"), 8, 50, 0.5, generator=torch.Generator().manual_seed(0))
    cfg = DiscoveryConfig(library_degree=0)
    m = Deflation.build(cfg, tr, device=torch.device("cpu"))
    assert m.data.n_dof is None
    assert hamiltonian_state(m.data, m.spans.Q_train, cfg, lambda: pytest.fail("fitted")) is None
    assert "hamiltonian" not in m.data.cache


def test_kill_and_resume_through_a_hamiltonian_start(tmp_path):
    """1-D oscillator, networks only: the Hamiltonian start (fitted in 500 steps) wins the first candidate's
    warm-up; runs killed inside the warm-up (the checkpoint holds the Hamiltonian initialisation beside the
    random one) and after it end bit-identical to the uninterrupted run."""
    from tests.test_conservation_method import _assert_same_discovery

    tr = simulate(get_system("ho1d"), 16, 40, 0.1, generator=torch.Generator().manual_seed(0))
    cfg = load_config(dict(library_degree=0, steps=20, restarts=1, warmup_fraction=0.4, batch_size=64,
                           checkpoint_every=5, log_every=5, max_laws=1, patience=0, hamiltonian_steps=500,
                           network={"width": 8, "depth": 1}), DiscoveryConfig)
    a = sciml.fit(Deflation, cfg, tr, out=tmp_path / "a")
    assert a.status == Status.SUCCESS and a.payload.fits[0].stats["start"] == "hamiltonian"
    for k in (7, 12):
        out = tmp_path / f"b{k}"
        b = sciml.fit(Deflation, cfg, tr, out=out, stop_at=k)
        assert b.status == Status.INTERRUPTED
        b = sciml.fit(Deflation, cfg, tr, out=out, resume=True)
        _assert_same_discovery(a.payload, b.payload)
