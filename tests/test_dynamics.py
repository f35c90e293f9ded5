"""sciml.dynamics: integrators against exact solutions and known invariants; the HDF5 schema's errors."""

from __future__ import annotations

import dataclasses
import json
import math

import h5py
import numpy as np
import pytest
import torch

from problems.systems import SYSTEMS, alpha_saddle_energy, get_system
from sciml.dynamics import (DOP853, DynamicalSystem, InitialRegion, Leapfrog, Yoshida4, load_trajectories,
                            lyapunov_exponent, save_trajectories, simulate)
from sciml.io import DataError


def _ho_exact(x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """q(t) = q0 cos t + p0 sin t, p(t) = -q0 sin t + p0 cos t (omega = 1)."""
    q0, p0 = x0[:, :1], x0[:, 1:]
    c, s = torch.cos(t)[None, :], torch.sin(t)[None, :]
    return torch.stack([q0 * c + p0 * s, -q0 * s + p0 * c], -1)


@pytest.mark.parametrize("integ, tol", [(Yoshida4(max_step=0.01), 5e-8), (DOP853(), 1e-8),
                                        (Leapfrog(max_step=1e-3), 1e-5)])
def test_integrators_match_exact_oscillator(integ, tol):
    s = get_system("ho1d")
    x0 = torch.tensor([[1.0, 0.0], [0.3, -0.7]], dtype=torch.float64)
    t = torch.linspace(0, 20, 101, dtype=torch.float64)
    X = integ.integrate(s, x0, t)
    assert X.shape == (2, 101, 2)
    assert (X - _ho_exact(x0, t)).abs().max() < tol


def test_orders_of_accuracy():
    """Halving the step divides the error by ~4 (leapfrog) and ~16 (Yoshida-4)."""
    s = get_system("ho1d")
    x0 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    t = torch.tensor([0.0, 5.0], dtype=torch.float64)
    ex = _ho_exact(x0, t)[:, -1]
    for cls, order in ((Leapfrog, 2), (Yoshida4, 4)):
        e1 = (cls(max_step=0.1).integrate(s, x0, t)[:, -1] - ex).norm()
        e2 = (cls(max_step=0.05).integrate(s, x0, t)[:, -1] - ex).norm()
        assert abs(math.log2(e1 / e2) - order) < 0.3


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_vector_field_is_hamiltonian(name):
    """f = (dH/dp, -dH/dq) with H differentiated by autograd (checks the hand-written forces)."""
    s = get_system(name, 3)
    if s.hamiltonian is None:
        pytest.skip("a first-order system (SIR): tests/test_systems_nonpolynomial.py checks its field")
    x = s.sample_initial(16, torch.Generator().manual_seed(0)).requires_grad_(True)
    (g,) = torch.autograd.grad(s.hamiltonian(x).sum(), x)
    N = s.n_dof
    assert torch.allclose(s.vector_field(x.detach()), torch.cat([g[:, N:], -g[:, :N]], -1), atol=1e-10)


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_known_invariants_conserved_by_integrator(name):
    s = get_system(name, 3)
    tr = simulate(s, 6, 201, 0.05, generator=torch.Generator().manual_seed(1))
    I = s.invariant_values(torch.from_numpy(tr.X))
    rel = ((I - I[:, :1]).abs() / I[:, :1].abs().clamp_min(1.0)).max()
    assert rel < 1e-5, f"{name}: known invariants drift by {rel:.1e}"
    assert tr.attrs["energy_drift"] < 1e-5   # the energy, or (SIR) the first invariant: finite, not NaN
    # and they are not trivially constant over the data set (they separate trajectories)
    assert (I[:, 0].std(0) > 1e-3).all()


def test_dop853_conserves_toda_invariants():
    s = get_system("toda-periodic", 4)
    tr = simulate(s, 3, 101, 0.1, integrator=DOP853(), generator=torch.Generator().manual_seed(2))
    I = s.invariant_values(torch.from_numpy(tr.X))
    assert ((I - I[:, :1]).abs() / I[:, :1].abs().clamp_min(1.0)).max() < 1e-7


def test_alpha_fput_initial_states_below_barrier():
    s = get_system("fput-alpha-fixed", 4)
    x = s.sample_initial(200, torch.Generator().manual_seed(0))
    assert (s.hamiltonian(x) <= s.max_energy).all() and x.shape == (200, 8)


@pytest.mark.parametrize("n_bonds", [3, 4, 5, 7])
def test_alpha_saddle_energy_is_the_mountain_pass(n_bonds):
    # hand values for N = 3, alpha = 1/4 (bonds -8, 4, 4 periodic; -6, 2, 2, 2 fixed), and for every size
    # brute force: along a straight ray r = t u (unit u, sum u = 0) the potential t^2/2 + a t^3 B/3, with
    # B = sum u^3 < 0, peaks at 1/(6 a^2 B^2); the saddle sits at the top of its own ray, and no escaping
    # path stays below it, so the lowest ray barrier over all directions is the saddle energy
    a = 0.25
    if n_bonds == 3:
        assert alpha_saddle_energy(3, a) == pytest.approx(16.0)
    if n_bonds == 4:
        assert alpha_saddle_energy(4, a) == pytest.approx(8.0)
    e_s = alpha_saddle_energy(n_bonds, a)
    u = torch.randn(400_000, n_bonds, generator=torch.Generator().manual_seed(n_bonds), dtype=torch.float64)
    u = u - u.mean(-1, keepdim=True)
    u = u / u.norm(dim=-1, keepdim=True)
    B = (u**3).sum(-1)
    barrier = 1 / (6 * a * a * B.clamp(max=-1e-12) ** 2)
    assert barrier.min() >= e_s * (1 - 1e-9)                            # no ray escapes below the saddle
    assert barrier.min() <= e_s * 1.03                                  # and the best ray nearly reaches it


@pytest.mark.parametrize("name, n", [("fput-alpha-fixed", 3), ("fput-alpha-periodic", 3), ("fput-alpha-fixed", 6),
                                     ("fput-alpha-periodic", 6)])
def test_chaotic_alpha_chains_sample_the_shell_and_stay_bounded(name, n):
    # N = 3: box states kept by rejection; N = 6: the box almost never hits the shell, so states are scaled
    # radially onto it - both must land in [0.94, 0.995] E_s with every bond above -1/alpha, and stay bounded
    s = get_system(name, n, regime="chaotic")
    periodic = name.endswith("periodic")
    e_s = alpha_saddle_energy(n if periodic else n + 1, 0.25)
    assert (s.region.hit_rate >= 1e-4) == (n == 3)
    tr = simulate(s, 16, 501, 0.1, generator=torch.Generator().manual_seed(0))
    X = torch.from_numpy(tr.X)
    E = s.hamiltonian(X[:, 0])
    if periodic:
        E = E - X[:, 0, n:].sum(-1) ** 2 / (2 * n)                      # internal energy
    assert (E >= 0.94 * e_s * (1 - 1e-6)).all() and (E <= 0.995 * e_s * (1 + 1e-6)).all()
    assert torch.isfinite(X).all() and tr.attrs["energy_drift"] < 1e-4  # nothing escaped over T = 50
    q = X[..., :n]
    bonds = (torch.roll(q, -1, -1) - q) if periodic else torch.diff(q, dim=-1, prepend=0 * q[..., :1],
                                                                    append=0 * q[..., :1])
    assert (bonds[:, 0] > -4).all() and bonds.abs().max() < 20           # started inside, stayed in the well


def test_energy_window_and_admissible_mask():
    s = get_system("ho1d")
    s = dataclasses.replace(s, min_energy=0.2, max_energy=0.3, admissible=lambda x: x[..., 0] > 0)
    x = s.sample_initial(300, torch.Generator().manual_seed(0))
    H = s.hamiltonian(x)
    assert x.shape == (300, 2) and (H >= 0.2).all() and (H <= 0.3).all() and (x[:, 0] > 0).all()
    with pytest.raises(RuntimeError, match="widen"):
        dataclasses.replace(s, min_energy=50.0, max_energy=60.0).sample_initial(4)
    with pytest.raises(ValueError, match="regime"):
        get_system("fput-beta-fixed", 3, regime="hot")


def test_fput_beta_periodic_n3_angular_momentum_is_special():
    # L is conserved only because three bonds with zero sum have sum r^4 = (sum r^2)^2 / 2: the same L
    # drifts in the alpha chain (cubic bonds) and the catalogue counts 3 integrals only for beta, N = 3
    beta, alpha = get_system("fput-beta-periodic", 3), get_system("fput-alpha-periodic", 3)
    assert beta.expected == 3 and beta.expected_involution == 3 and "L" in beta.invariants
    assert beta.expected_is_lower_bound and not alpha.expected_is_lower_bound
    assert "L" not in get_system("fput-beta-periodic", 4).invariants and alpha.expected == 2
    L = beta.invariants["L"]
    tr = simulate(alpha, 8, 301, 0.1, generator=torch.Generator().manual_seed(1))
    v = L(torch.from_numpy(tr.X))
    assert (v.std(1) / v.std()).max() > 0.1


# ------------------------------------------------------------------------------------- Lyapunov
def _linear(A):
    A = torch.tensor(A, dtype=torch.float64)
    return DynamicalSystem(name="linear", dim=A.shape[0], vector_field=lambda x: x @ A.T,
                           region=InitialRegion((0.0,) * A.shape[0], 1.0))


def test_lyapunov_of_a_saddle_is_its_unstable_eigenvalue():
    # x' = p, p' = 4x: eigenvalues +-2, so every generic tangent grows like e^{2t}
    r = lyapunov_exponent(_linear([[0.0, 1.0], [4.0, 0.0]]), torch.zeros(4, 2), 20.0,
                          generator=torch.Generator().manual_seed(0))
    assert torch.allclose(r.final, torch.full((4,), 2.0, dtype=torch.float64), atol=0.02)
    assert r.chaotic.all() and r.steps == 2000 and r.exponents.shape == (4, 20)


def test_lyapunov_of_oscillators_is_zero_and_not_chaotic():
    # the 1-D oscillator's flow is a rotation (tangent norm constant up to RK4 error); the isotropic
    # 2-D oscillator likewise; integrable periodic Toda shears its tori, so tangents grow only linearly
    for name in ("ho1d", "ho2d-iso"):
        s = get_system(name)
        r = lyapunov_exponent(s, s.sample_initial(8, torch.Generator().manual_seed(0)), 30.0, step=0.05,
                              generator=torch.Generator().manual_seed(1))
        assert r.final.abs().max() < 1e-6 and r.chaotic_fraction == 0.0
    s = get_system("toda-periodic", 3)
    r = lyapunov_exponent(s, s.sample_initial(4, torch.Generator().manual_seed(0)), 100.0, step=0.05,
                          generator=torch.Generator().manual_seed(1))
    assert r.chaotic_fraction == 0.0 and r.summary()["median"] < 2 * r.summary()["regular_reference"]


def test_lyapunov_bad_arguments():
    s = _linear([[0.0, 1.0], [-1.0, 0.0]])
    with pytest.raises(ValueError, match="multiple of step"):
        lyapunov_exponent(s, torch.zeros(1, 2), 1.0, step=0.3)
    with pytest.raises(ValueError, match="shape"):
        lyapunov_exponent(s, torch.zeros(1, 3), 1.0)
    with pytest.raises(FloatingPointError, match="non-finite"):
        lyapunov_exponent(_linear([[0.0, 1.0], [1e6, 0.0]]), torch.zeros(1, 2), 2.0)  # RK4 unstable


# ------------------------------------------------------------------------------------- HDF5 schema
def _write(path, **kw):
    with h5py.File(path, "w") as fh:
        for k, v in kw.items():
            if k.startswith("attr_"):
                fh.attrs[k[5:]] = v
            else:
                fh.create_dataset(k, data=v)
    return path


def test_roundtrip(tmp_path):
    s = get_system("ho2d-iso")
    tr = simulate(s, 3, 20, 0.1, generator=torch.Generator().manual_seed(0))
    p = save_trajectories(tr, tmp_path / "a.h5")
    back = load_trajectories(p)
    assert np.array_equal(back.X, tr.X) and np.allclose(back.t, tr.t) and back.layout == "qp"
    assert back.attrs["system"] == "ho2d-iso" and back.n_dof == 2


def test_dt_attribute_instead_of_t(tmp_path):
    X = np.random.default_rng(0).normal(size=(3, 10, 4))
    back = load_trajectories(_write(tmp_path / "a.h5", trajectories=X, attr_dt=0.5))
    assert np.allclose(back.t, 0.5 * np.arange(10))


@pytest.mark.parametrize("kw, msg", [
    ({"states": np.zeros((3, 10, 4))}, "missing dataset 'trajectories'"),
    ({"trajectories": np.zeros((10, 4)), "attr_dt": 0.1}, "expected rank 3"),
    ({"trajectories": np.full((3, 10, 4), np.nan), "attr_dt": 0.1}, "NaN/inf"),
    ({"trajectories": np.zeros((3, 4, 4)), "attr_dt": 0.1}, "at least 5 are needed"),
    ({"trajectories": np.zeros((1, 10, 4)), "attr_dt": 0.1}, "at least 2 are needed"),
    ({"trajectories": np.zeros((3, 10, 4))}, "no sample times"),
    ({"trajectories": np.zeros((3, 10, 4)), "attr_dt": -1.0}, "positive"),
    ({"trajectories": np.zeros((3, 10, 4)), "t": np.arange(9.0)}, "one time per sample"),
    ({"trajectories": np.zeros((3, 10, 4)), "t": np.zeros(10)}, "strictly increasing"),
    ({"trajectories": np.zeros((3, 10, 3)), "attr_dt": 0.1, "attr_layout": "qp"}, "even state dimension"),
])
def test_malformed_files_give_documented_errors(tmp_path, kw, msg):
    X = kw.get("trajectories")
    if X is not None and np.isnan(X).any():
        X[1, 3, 2] = np.inf
    p = _write(tmp_path / "bad.h5", **kw)
    with pytest.raises(DataError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        load_trajectories(p)


def test_not_hdf5_and_missing_file(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5"):
        load_trajectories(p)
    with pytest.raises(DataError, match="file not found"):
        load_trajectories(tmp_path / "nope.h5")


def test_cli_simulate_and_bad_input(tmp_path, capsys):
    from sciml.cli import main

    out = tmp_path / "t.h5"
    assert main(["simulate", "toda-open", "--n", "3", "--n-traj", "4", "--n-times", "30", "--out", str(out)]) == 0
    tr = load_trajectories(out)
    assert tr.X.shape == (4, 30, 6) and tr.attrs["system"] == "toda-open"
    assert "energy drift" in capsys.readouterr().out
    assert main(["simulate", "ho1d", "--n-times", "3", "--out", str(out)]) == 2
    assert "--n-times" in capsys.readouterr().err
    assert main(["simulate", "ho1d", "--amplitude", "0", "--out", str(out)]) == 2
    assert "--amplitude" in capsys.readouterr().err
    # --amplitude widens the box; --lyapunov stores the exponents: the 1-D oscillator's is 0 (a rotation)
    assert main(["simulate", "ho1d", "--amplitude", "2", "--n-traj", "4", "--n-times", "20", "--lyapunov", "20",
                 "--out", str(out)]) == 0
    tr = load_trajectories(out)
    lyap = json.loads(tr.attrs["lyapunov"])
    assert abs(lyap["median"]) < 1e-6 and lyap["chaotic_fraction"] == 0.0
    assert np.abs(tr.X[:, 0]).max() > 1.0 and "U(-2.0, 2.0)" in tr.attrs["region"]
    assert "chaotic fraction 0.00" in capsys.readouterr().out
    # --regime chaotic: the alpha chain's shell below its saddle (E_s = 8 for the fixed chain, N = 3)
    assert main(["simulate", "fput-alpha-fixed", "--regime", "chaotic", "--n-traj", "4", "--n-times", "20",
                 "--out", str(out)]) == 0
    tr = load_trajectories(out)
    E = get_system("fput-alpha-fixed", 3).hamiltonian(torch.from_numpy(tr.X[:, 0]))
    assert ((E > 0.94 * 8 - 1e-9) & (E < 0.995 * 8 + 1e-9)).all() and "chaotic" in tr.attrs["region"]
    assert main(["simulate", "ho1d", "--regime", "chaotic", "--out", str(out)]) == 2
    assert "--regime" in capsys.readouterr().err


def test_a_region_that_never_gives_admissible_states_says_so():
    """The rejection sampler stops with a RegionError that names the failing condition (here only
    `admissible`, no energy window) and how many states it found, not an energy range of Nones."""
    from sciml.dynamics import RegionError

    system = dataclasses.replace(get_system("ho1d"), admissible=lambda x: torch.zeros(x.shape[0], dtype=torch.bool),
                                 min_energy=None, max_energy=None)
    with pytest.raises(RegionError, match=r"admissible \(0 of 4 after 512000 draws") as e:
        system.sample_initial(4, torch.Generator().manual_seed(0))
    assert "None" not in str(e.value)


def test_a_rare_region_is_filled_by_draws_sized_to_its_acceptance():
    """A region that accepts one box state in 10^4 (ho1d with q > 1 - 2e-4 on q ~ U(-1, 1)) needs about
    3 million draws for 300 states: more than the 2000 fixed rounds give (the periodic alpha chain at N = 5
    with 512 trajectories hit that wall); past them the draws follow the acceptance rate, every state kept
    is admissible, and they spread over the whole accepted interval."""
    base = get_system("ho1d")
    assert base.region.half_width[0] == 1.0 and base.region.centre[0] == 0.0
    system = dataclasses.replace(base, admissible=lambda x: x[..., 0] > 1 - 2e-4, min_energy=None, max_energy=None)
    x = system.sample_initial(300, torch.Generator().manual_seed(0))
    assert x.shape == (300, 2) and bool((x[:, 0] > 1 - 2e-4).all())
    u = ((x[:, 0] - (1 - 2e-4)) / 2e-4).sort().values      # uniform on [0, 1] if the sampler is unbiased
    ks = (u - (torch.arange(300, dtype=u.dtype) + 0.5) / 300).abs().max()
    assert ks < 0.1, f"accepted states not uniform on the accepted interval (KS {ks:.3f})"
