"""The catalogue's systems with non-polynomial invariants: pendulum, Morse, Yukawa, SIR, Henon-Heiles.

Checked against analytic facts, never against the code's own output: the invariants' Lie derivatives
vanish identically (autograd), the vector fields are the Hamiltonian ones of the stated energies (SIR:
in the canonical coordinates (ln S, ln I)), the invariants stay constant along simulated trajectories to
the integrator's accuracy, with Yoshida-4's h^4 error law showing the remaining drift is the integrator's,
Yukawa's two integrals are independent on its region and dependent on a circular orbit, and the regions
hold what the docs say they hold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from problems.systems import HAS_N, SYSTEMS, get_system, scratch_values, state_dim
from sciml.dynamics import DOP853, Yoshida4, load_trajectories, simulate

NEW = ["pendulum", "morse", "yukawa", "sir", "henon-heiles"]
HAMILTONIAN = ["pendulum", "morse", "yukawa", "henon-heiles"]
EXPECTED = {"pendulum": 1, "morse": 1, "yukawa": 2, "sir": 1, "henon-heiles": 1}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _drift(system, X: np.ndarray) -> torch.Tensor:
    """Per invariant: max over the data of |I(x_t) - I(x_0)| / max(|I(x_0)|, 1)."""
    I = system.invariant_values(torch.from_numpy(X))
    return ((I - I[:, :1]).abs() / I[:, :1].abs().clamp_min(1.0)).amax((0, 1))


def test_catalogue_entries():
    """Names, counts (issue #16), state dimensions without building, and the sizes the CLI checks."""
    for name in NEW:
        s = get_system(name)
        assert name in SYSTEMS and name not in HAS_N and s.name == name
        assert s.expected == EXPECTED[name] == len(s.invariants) and not s.expected_is_lower_bound
        assert state_dim(name, 7) == s.dim == (4 if name in ("yukawa", "henon-heiles") else 2)
        assert scratch_values(name) == 4 * s.dim
        assert get_system(name, 5).dim == s.dim                # n is ignored, as for the oscillators
    s = get_system("sir")
    assert s.n_dof is None and s.hamiltonian is None and not s.separable
    assert all(get_system(n).separable for n in HAMILTONIAN)


@pytest.mark.parametrize("name", NEW)
def test_lie_derivative_of_every_invariant_vanishes(name):
    """dI/dt = grad I . f = 0 identically: autograd at 64 states of the region, relative to |grad I||f|."""
    s = get_system(name)
    x = s.sample_initial(64, _gen()).requires_grad_(True)
    f = s.vector_field(x.detach())
    for key, inv in s.invariants.items():
        (g,) = torch.autograd.grad(inv(x).sum(), x)
        rel = (g * f).sum(-1).abs() / (g.norm(dim=-1) * f.norm(dim=-1))
        assert rel.max() < 1e-12, f"{name}: {key} has dI/dt / (|grad I||f|) = {rel.max():.1e}"


@pytest.mark.parametrize("name", HAMILTONIAN)
def test_vector_field_is_hamiltonian(name):
    """f = (dH/dp, -dH/dq) with H differentiated by autograd (checks the hand-written forces)."""
    s = get_system(name)
    x = s.sample_initial(64, _gen(1)).requires_grad_(True)
    (g,) = torch.autograd.grad(s.hamiltonian(x).sum(), x)
    N = s.n_dof
    assert torch.allclose(s.vector_field(x.detach()), torch.cat([g[:, N:], -g[:, :N]], -1), rtol=0, atol=1e-12)


def test_sir_is_canonical_in_log_coordinates():
    r"""With u = ln S, v = ln I: K(u, v) = -beta C(e^u, e^v) = gamma u - beta (e^u + e^v), and
    (dS/dt, dI/dt) = (S dK/dv, -I dK/du) - the catalogue's C and f against the known Poisson structure."""
    beta, gamma = 0.5, 0.125
    s = get_system("sir")
    assert s.params == {"beta": beta, "gamma": gamma}
    x = s.sample_initial(64, _gen(2))
    uv = torch.log(x).requires_grad_(True)
    K = -beta * s.invariants["C"](torch.exp(uv))
    u, v = uv.detach().unbind(-1)
    assert torch.allclose(K.detach(), gamma * u - beta * (torch.exp(u) + torch.exp(v)), rtol=0, atol=1e-14)
    (g,) = torch.autograd.grad(K.sum(), uv)
    expected = torch.stack([x[:, 0] * g[:, 1], -x[:, 1] * g[:, 0]], -1)
    assert torch.allclose(s.vector_field(x), expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", HAMILTONIAN)
def test_invariants_conserved_to_yoshida4_accuracy(name):
    r"""Yoshida-4 keeps the energy to C (h/tau)^4 with tau the fastest time scale on the data (about 1;
    Yukawa's pericentre passage r_min^{3/2} >= 0.35): with h = 0.01 that is ~1e-8 for C of order 1, so
    1e-6 leaves two decades (measured: pendulum 7e-10, Morse 6e-8, Yukawa 4e-8, Henon-Heiles 4e-10 over
    T = 50). Halving h must divide the drift by 2^4 = 16: the remaining drift is the integrator's, not a
    wrong invariant's (that would not shrink). Yukawa's L is conserved exactly by the splitting (central
    force: each kick is radial), so only its roundoff is bounded."""
    s = get_system(name)
    x0 = s.sample_initial(8, _gen(3))
    t = torch.arange(201, dtype=torch.float64) * 0.05
    drifts = []
    for h in (0.01, 0.005):
        X = Yoshida4(max_step=h).integrate(s, x0, t).numpy()
        assert np.isfinite(X).all()
        drifts.append(_drift(s, X))
    assert drifts[0].max() < 1e-6, f"{name}: invariants drift by {drifts[0]}"
    ratio = drifts[0][0] / drifts[1][0]
    assert 12 < ratio < 20, f"{name}: halving the step divides the energy drift by {ratio:.1f}, not 16"
    if name == "yukawa":
        assert drifts[0][1] < 1e-12
    I0 = s.invariant_values(x0)                                # and they separate trajectories
    assert (I0.std(0) > 1e-3).all()


@pytest.mark.parametrize("amplitude", [1.0, 3.0])
def test_sir_region_is_a_population(amplitude):
    """S, I > 0 and S + I <= 1 (fractions of a population), also when a wider box reaches past them."""
    x = get_system("sir", amplitude=amplitude).sample_initial(2000, _gen(10))
    S, I = x.unbind(-1)
    assert (S > 0).all() and (I > 0).all() and (S + I <= 1).all()
    assert S.min() < 0.3 and S.max() > 0.85 and I.max() > 0.15            # and the box is used


def test_sir_invariant_conserved_to_dop853_accuracy():
    """DOP853 at rtol = atol = 1e-11 over T = 100 (the epidemic has run its course): C to 1e-9 (measured
    1e-10); at rtol = atol = 1e-6 the drift is larger by orders of magnitude, so the 1e-9 is the
    integrator's accuracy and not a coincidence of the invariant."""
    s = get_system("sir")
    tr = simulate(s, 16, 201, 0.5, generator=_gen(4))
    assert tr.layout == "none" and "DOP853" in tr.attrs["integrator"]
    assert _drift(s, tr.X)[0] < 1e-9
    I = tr.X[..., 1]
    assert (I[:, -1] < 0.05 * I.max(1)).all()                  # every epidemic has peaked and faded
    loose = DOP853(rtol=1e-6, atol=1e-6).integrate(s, torch.from_numpy(tr.X[:, 0]), torch.from_numpy(tr.t))
    assert _drift(s, loose.numpy())[0] > 100 * _drift(s, tr.X)[0]


def test_yukawa_integrals_independent_except_on_circular_orbits():
    r"""Rank of (grad H, grad L): 2 on the region (smallest singular value of the unit gradients well
    above 0), 1 on a circular orbit (r = 1, tangential speed v^2 = r V'(r)), where the rank check must see
    the dependence."""
    s = get_system("yukawa")
    lam = s.params["screening"]

    def unit_grads(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        rows = [torch.autograd.grad(f(x).sum(), x)[0] for f in s.invariants.values()]
        G = torch.stack(rows, -2)
        return G / G.norm(dim=-1, keepdim=True)

    sv = torch.linalg.svdvals(unit_grads(s.sample_initial(256, _gen(5))))
    assert sv[:, -1].min() > 0.05
    v = math.sqrt(math.exp(-1 / lam) * (1 + 1 / lam))          # r V'(r) at r = 1
    circ = torch.tensor([[1.0, 0.0, 0.0, v], [0.0, 1.0, -v, 0.0]], dtype=torch.float64)
    assert torch.linalg.svdvals(unit_grads(circ))[:, -1].max() < 1e-12
    # the circular state is the analytic one: it stays at r = 1
    X = Yoshida4().integrate(s, circ, torch.linspace(0, 10, 11, dtype=torch.float64))
    assert (X[..., :2].norm(dim=-1) - 1).abs().max() < 1e-8


def test_yukawa_orbits_bound_noncircular_away_from_origin():
    """Checked on the integrated orbits (not the grid that selected them): pericentre >= 0.5, apocentre
    <= 1/|H| (since V >= -1/r), eccentricity of the r range >= 0.2, and the orbit precesses (not Kepler):
    the angle between successive pericentres is not a multiple of 2 pi."""
    s = get_system("yukawa")
    tr = simulate(s, 8, 1001, 0.05, generator=_gen(6))
    X = torch.from_numpy(tr.X)
    r = X[..., :2].norm(dim=-1)
    E = s.hamiltonian(X[:, 0])
    assert (E <= -0.05).all() and (r.amin(1) >= 0.5 * (1 - 1e-3)).all() and (r.amax(1) <= 1 / E.abs()).all()
    r_lo, r_hi = r.amin(1), r.amax(1)
    assert ((r_hi - r_lo) >= 0.2 * (r_hi + r_lo) * (1 - 1e-2)).all()
    # pericentre angles: local minima of r along trajectory 0
    r0, th = r[0], torch.atan2(X[0, :, 1], X[0, :, 0])
    idx = ((r0[1:-1] < r0[:-2]) & (r0[1:-1] < r0[2:])).nonzero().squeeze(-1) + 1
    assert len(idx) >= 2
    d = torch.remainder(th[idx[1]] - th[idx[0]], 2 * math.pi)
    assert min(float(d), 2 * math.pi - float(d)) > 0.1


def test_pendulum_region_avoids_separatrix_and_mostly_librates():
    """|H - 1| >= 0.1 for every state; the librating share among them matches the box's area fractions,
    A(H <= 0.9) / (A(H <= 0.9) + A(H >= 1.1)) over q in (-pi, pi), |p| <= 1.5, by quadrature in q."""
    s = get_system("pendulum")
    x = s.sample_initial(4000, _gen(7))
    H = s.hamiltonian(x)
    assert ((H - 1).abs() >= 0.1).all() and (x[:, 0].abs() <= math.pi).all() and (x[:, 1].abs() <= 1.5).all()
    q = np.linspace(-math.pi, math.pi, 200001)

    def width(E: float) -> np.ndarray:     # measure of {|p| <= 1.5 : p^2/2 <= E + cos q}
        return np.minimum(2 * np.sqrt(np.clip(2 * (E + np.cos(q)), 0, None)), 3.0)
    below, above = np.trapezoid(width(0.9), q), np.trapezoid(3.0 - width(1.1), q)
    share = below / (below + above)
    assert abs(float((H < 1).double().mean()) - share) < 0.03 and 0.7 < share < 0.85


def test_morse_region_bound_below_e_max():
    """Every state below 0.8 D (bound); the box's q-range ends on the level set V = 0.8 D; trajectories
    stay inside it."""
    s = get_system("morse")
    c, hw = s.region.centre[0], s.region.half_width[0]
    V = lambda q: (1 - math.exp(-q)) ** 2  # noqa: E731  (D = alpha = 1)
    assert V(c - hw) == pytest.approx(0.8) and V(c + hw) == pytest.approx(0.8)
    tr = simulate(s, 16, 401, 0.05, generator=_gen(8))
    X = torch.from_numpy(tr.X)
    assert (s.hamiltonian(X[:, 0]) <= 0.8).all()
    assert (X[..., 0] >= c - hw - 1e-6).all() and (X[..., 0] <= c + hw + 1e-6).all()


def test_henon_heiles_shell_inside_triangle():
    """The saddles are the triangle's vertices (grad V = 0, V = 1/6 there); states lie on the shell
    [0.12, 0.16] inside the triangle and stay inside it (bounded, below the escape energy)."""
    s = get_system("henon-heiles")
    verts = torch.tensor([[0.0, 1.0], [math.sqrt(3) / 2, -0.5], [-math.sqrt(3) / 2, -0.5]], dtype=torch.float64)
    zeros = torch.zeros_like(verts)
    assert s.dV_dq(verts).abs().max() < 1e-15
    assert torch.allclose(s.hamiltonian(torch.cat([verts, zeros], -1)), torch.full((3,), 1 / 6, dtype=torch.float64))
    tr = simulate(s, 16, 401, 0.05, generator=_gen(9))
    X = torch.from_numpy(tr.X)
    E = s.hamiltonian(X[:, 0])
    assert ((E >= 0.12) & (E <= 0.16)).all()
    x, y = X[..., 0], X[..., 1]
    assert ((y > -0.5) & (y < 1 - math.sqrt(3) * x.abs())).all()
    # beyond each vertex, between the extended edges, V < 1/6 again: those states escape and are refused
    out = torch.tensor([[0.0, 1.2, 0.1, 0.0], [1.0, -0.6, 0.0, 0.1], [-1.0, -0.6, 0.0, 0.1]], dtype=torch.float64)
    assert (s.hamiltonian(out) < 1 / 6).all() and not s.admissible(out).any()


@pytest.mark.parametrize("name", NEW)
def test_cli_simulate_writes_loadable_file(name, tmp_path, capsys):
    from sciml.cli import main

    out = tmp_path / f"{name}.h5"
    assert main(["simulate", name, "--n", "3", "--n-traj", "4", "--n-times", "40", "--out", str(out)]) == 0
    tr = load_trajectories(out)
    s = get_system(name)
    assert tr.X.shape == (4, 40, s.dim) and tr.attrs["system"] == name
    assert tr.layout == ("none" if name == "sir" else "qp")
    assert _drift(s, tr.X).max() < 1e-6
    assert f"{EXPECTED[name]} independent integrals" in capsys.readouterr().out


def test_five_line_usage(tmp_path, monkeypatch):
    """The catalogue's five lines, the block of docs/systems.md: a system, trajectories, the file, loaded
    back, the known invariants on them - the same states, and H and L constant along each trajectory."""
    from docblocks import run_block

    monkeypatch.chdir(tmp_path)
    ns = run_block("systems.md", "systems-usage")
    value, payload = ns["value"], ns["payload"]
    assert (tmp_path / "yukawa.h5").is_file() and np.array_equal(payload.X, ns["traj"].X)
    assert value.shape == (16, 400, 2) and (value - value[:, :1]).abs().max() < 1e-6
    assert (value[:, 0].std(0) > 1e-2).all()                   # and they differ between trajectories
