r"""The catalogue of test systems for conservation-law discovery, with known invariants.

Every Hamiltonian system uses the ``qp`` layout ``x = (q_1..q_N, p_1..p_N)``, unit masses,
``T(p) = |p|^2/2``; ``sir`` is first order in ``(S, I)`` (layout ``"none"``, no Hamiltonian).
Invariants are written for one state ``x`` of shape ``(d,)`` with ellipsis indexing, so they also
broadcast over leading batch axes. ``expected`` is the number of functionally independent (global,
smooth) first integrals; ``expected_involution`` the number in involution.

==========================  ===  =========  ===========  ==============================================
name                        d    expected   involution   known invariants provided
==========================  ===  =========  ===========  ==============================================
``ho1d``                    2    1          1            H
``ho2d-iso``                4    3          2            H_x, H_y, L = x p_y - y p_x
``ho2d-1to2``               4    3          2            H_x, H_y, Re/Im (a_1^2 conj a_2)
``ho2d-incommensurate``     4    2          2            H_x, H_y (frequencies 1 : sqrt 2)
``toda-open``               2N   2N-1       N            tr L^k, k = 1..N (Flaschka Lax matrix)
``toda-periodic``           2N   N          N            tr L^k, k = 1..N (periodic Lax matrix)
``fput-{alpha,beta}-periodic`` 2N 2         2            H, P = sum p (beta, N = 3: 3 and 3, + L)
``fput-{alpha,beta}-fixed`` 2N   1          1            H
                                                      (FPUT: ``regime="chaotic"`` for data that show it)
``calogero``                2N   2N-1       N            tr L^k (k=1..N) and tr(QL^k)tr L - tr Q tr L^{k+1}
``pendulum``                2    1          1            H = p^2/2 - cos q
``morse``                   2    1          1            H = p^2/2 + D (1 - exp(-alpha q))^2
``yukawa``                  4    2          2            H = |p|^2/2 - exp(-r/lambda)/r, L
``sir``                     2    1          1            C = S + I - (gamma/beta) ln S (not Hamiltonian)
``henon-heiles``            4    1          1            H (chaotic energy shell [0.12, 0.16])
==========================  ===  =========  ===========  ==============================================

``docs/systems.md`` describes the systems with non-polynomial invariants (the last five) and their regions.

Build one with :func:`get_system` (``get_system("toda-open", n=3)``); :data:`SYSTEMS` lists the names,
:func:`state_dim` gives a system's state dimension without building it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from sciml.dynamics.system import DynamicalSystem, InitialRegion

__all__ = ["SYSTEMS", "get_system", "state_dim", "scratch_values", "harmonic_1d", "harmonic_2d", "toda", "fput",
           "calogero", "pendulum", "morse", "yukawa", "sir", "henon_heiles"]


def _kin(p: Tensor) -> Tensor:
    return p


def _T(p: Tensor) -> Tensor:
    return 0.5 * (p * p).sum(-1)


def _split(x: Tensor, N: int) -> tuple[Tensor, Tensor]:
    return x[..., :N], x[..., N:]


def _field(N: int, dV_dq: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def f(x: Tensor) -> Tensor:
        q, p = _split(x, N)
        return torch.cat([p, -dV_dq(q)], -1)
    return f


# ---------------------------------------------------------------------------------------------------
# harmonic oscillators
def harmonic_1d(omega: float = 1.0, amplitude: float = 1.0) -> DynamicalSystem:
    r"""1-D oscillator :math:`H = (p^2 + \omega^2 q^2)/2`; one integral, H."""
    dV = lambda q: omega**2 * q  # noqa: E731
    H = lambda x: 0.5 * (x[..., 1] ** 2 + omega**2 * x[..., 0] ** 2)  # noqa: E731
    return DynamicalSystem(
        name="ho1d", dim=2, vector_field=_field(1, dV), n_dof=1, hamiltonian=H, dT_dp=_kin, dV_dq=dV,
        region=InitialRegion((0.0, 0.0), (amplitude, amplitude), f"q, p ~ U(-{amplitude}, {amplitude})"),
        invariants={"H": H}, expected=1, expected_involution=1, params={"omega": omega},
        notes="every trajectory is a closed curve: one integral")


def harmonic_2d(omega: tuple[float, float] = (1.0, 1.0), amplitude: float = 1.0, name: str | None = None
                ) -> DynamicalSystem:
    r"""2-D oscillator :math:`H = \sum_i (p_i^2 + \omega_i^2 q_i^2)/2`.

    Integrals: :math:`H_i = (p_i^2+\omega_i^2q_i^2)/2` always. With :math:`a_j = \omega_j q_j + i p_j`
    (:math:`\dot a_j = -i\omega_j a_j`), the product :math:`a_1^m \bar a_2^n` is conserved when
    :math:`m\omega_1 = n\omega_2`: isotropic (1:1) gives :math:`L = x p_y - y p_x` (and
    :math:`xy\omega^2 + p_xp_y`), the 1:2 case the cubic :math:`\mathrm{Re}/\mathrm{Im}(a_1^2\bar a_2)`.
    Incommensurate frequencies leave only :math:`H_1, H_2` global (the tori are filled densely).
    """
    w1, w2 = omega
    wsq = torch.tensor([w1**2, w2**2], dtype=torch.float64)
    dV = lambda q: wsq.to(q) * q  # noqa: E731
    H1 = lambda x: 0.5 * (x[..., 2] ** 2 + w1**2 * x[..., 0] ** 2)  # noqa: E731
    H2 = lambda x: 0.5 * (x[..., 3] ** 2 + w2**2 * x[..., 1] ** 2)  # noqa: E731
    invariants: dict[str, Callable[[Tensor], Tensor]] = {"H_x": H1, "H_y": H2}
    ratio = w2 / w1
    if abs(ratio - 1.0) < 1e-12:
        kind, expected = "iso", 3
        invariants["L"] = lambda x: x[..., 0] * x[..., 3] - x[..., 1] * x[..., 2]
    elif abs(ratio - 2.0) < 1e-12:
        kind, expected = "1to2", 3

        def _prod(x: Tensor) -> tuple[Tensor, Tensor]:
            ar, ai = w1 * x[..., 0], x[..., 2]          # a_1
            br, bi = w2 * x[..., 1], -x[..., 3]         # conj(a_2)
            sr, si = ar * ar - ai * ai, 2 * ar * ai     # a_1^2
            return sr * br - si * bi, sr * bi + si * br
        invariants["Re(a1^2 conj a2)"] = lambda x: _prod(x)[0]
        invariants["Im(a1^2 conj a2)"] = lambda x: _prod(x)[1]
    else:
        kind, expected = "incommensurate", 2
    return DynamicalSystem(
        name=name or f"ho2d-{kind}", dim=4, vector_field=_field(2, dV), n_dof=2,
        hamiltonian=lambda x: H1(x) + H2(x), dT_dp=_kin, dV_dq=dV,
        region=InitialRegion((0.0,) * 4, (amplitude,) * 4, f"x, y, p_x, p_y ~ U(-{amplitude}, {amplitude})"),
        invariants=invariants, expected=expected, expected_involution=2, params={"omega": [w1, w2]},
        notes={"iso": "superintegrable: H_x, H_y, L", "1to2": "superintegrable: third integral is cubic",
               "incommensurate": "tori filled densely: only H_x, H_y are global"}[kind])


# ---------------------------------------------------------------------------------------------------
# Toda lattice
def _toda_lax(x: Tensor, N: int, periodic: bool) -> Tensor:
    r"""Flaschka's symmetric Lax matrix: :math:`b_i = -p_i/2` on the diagonal,
    :math:`a_i = \tfrac12 e^{(q_i - q_{i+1})/2}` off it (and in the corners when periodic)."""
    q, p = _split(x, N)
    L = torch.diag_embed(-0.5 * p)
    n_bonds = N if periodic else N - 1
    r = q[..., :n_bonds] - torch.roll(q, -1, dims=-1)[..., :n_bonds]
    a = 0.5 * torch.exp(0.5 * r)
    E = torch.zeros(N, N, dtype=x.dtype, device=x.device)
    for i in range(n_bonds):  # symmetric one-hot masks keep the function vmap-friendly
        j = (i + 1) % N
        M = E.clone()
        M[i, j] = 1.0
        M[j, i] = 1.0
        L = L + a[..., i, None, None] * M
    return L


def _trace_powers(L: Tensor, kmax: int) -> list[Tensor]:
    out, P = [], L
    for _ in range(kmax):
        out.append(torch.diagonal(P, dim1=-2, dim2=-1).sum(-1))
        P = P @ L
    return out


def toda(n: int = 3, periodic: bool = False, amplitude: float = 1.0) -> DynamicalSystem:
    r"""Toda lattice :math:`H = \sum p_i^2/2 + \sum_{\rm bonds} e^{q_i - q_{i+1}}`.

    Open (``periodic=False``, N-1 bonds): a scattering system, superintegrable with 2N-1 integrals
    (Agrotis-Damianou-Sophocleous 2006); the N traces :math:`\mathrm{tr}\,L^k` are given for checking.
    Periodic (N bonds, :math:`q_{N+1} = q_1`): N integrals in involution (Henon, Flaschka 1974).
    """
    if n < 2 or (periodic and n < 3):
        raise ValueError("Toda needs n >= 2 (open) or n >= 3 (periodic)")
    N = n

    def dV(q: Tensor) -> Tensor:
        if periodic:
            e = torch.exp(q - torch.roll(q, -1, dims=-1))        # bond i: e^{q_i - q_{i+1}}
            return e - torch.roll(e, 1, dims=-1)
        e = torch.exp(q[..., :-1] - q[..., 1:])
        z = torch.zeros_like(q[..., :1])
        return torch.cat([e, z], -1) - torch.cat([z, e], -1)

    def V(q: Tensor) -> Tensor:
        if periodic:
            return torch.exp(q - torch.roll(q, -1, dims=-1)).sum(-1)
        return torch.exp(q[..., :-1] - q[..., 1:]).sum(-1)

    H = lambda x: _T(x[..., N:]) + V(x[..., :N])  # noqa: E731
    invariants = {f"tr L^{k}": (lambda x, k=k: _trace_powers(_toda_lax(x, N, periodic), k)[-1])
                  for k in range(1, N + 1)}
    kind = "periodic" if periodic else "open"
    return DynamicalSystem(
        name=f"toda-{kind}", dim=2 * N, vector_field=_field(N, dV), n_dof=N, hamiltonian=H,
        dT_dp=_kin, dV_dq=dV,
        region=InitialRegion((0.0,) * (2 * N), (amplitude,) * (2 * N),
                             f"q_i, p_i ~ U(-{amplitude}, {amplitude})"),
        invariants=invariants, expected=N if periodic else 2 * N - 1, expected_involution=N,
        params={"n": N, "periodic": periodic},
        notes="N integrals in involution (at least N)" if periodic else "superintegrable scattering: 2N-1",
        expected_is_lower_bound=periodic)


# ---------------------------------------------------------------------------------------------------
# Fermi-Pasta-Ulam-Tsingou
@dataclass(frozen=True)
class EnergyShellRegion(InitialRegion):
    r"""Box states whose ``energy`` lies in ``[lo, hi]`` and whose ``bonds`` all exceed ``r_min``.

    Drawn by rejection from the box while at least ``1e-4`` of box states qualify (the alpha chains up to
    N = 4, and periodic N = 5); beyond that (the box's energies grow with N while the shell does not),
    box states are **scaled radially** onto target energies drawn uniformly in ``[lo, hi]``: along
    :math:`s \mapsto s x` with every bond above ``r_min`` (= :math:`-1/\alpha`) both the kinetic and every
    bond's potential increase, so the target is reached by bisection on ``s``.
    """

    energy: Callable[[Tensor], Tensor] | None = None
    bonds: Callable[[Tensor], Tensor] | None = None
    lo: float = 0.0
    hi: float = 0.0
    r_min: float = -math.inf

    def contains(self, x: Tensor) -> Tensor:
        """Mask of states in the shell (relative slack 1e-9 for the bisection's last bit) with every bond
        above ``r_min``."""
        e = self.energy(x)
        return (e >= self.lo * (1 - 1e-9)) & (e <= self.hi * (1 + 1e-9)) & (self.bonds(x) > self.r_min).all(-1)

    @functools.cached_property
    def hit_rate(self) -> float:
        """Fraction of box states in the shell (a fixed probe of 2^16, so the caller's stream is untouched)."""
        x = super().sample(1 << 16, torch.Generator().manual_seed(12345))
        return float(self.contains(x).double().mean())

    def sample(self, n: int, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float64) -> Tensor:
        if self.hit_rate >= 1e-4:  # plain box states; the system's admissible mask (contains) keeps the shell
            return super().sample(n, generator, dtype)
        x = super().sample(max(4 * n, 4096), generator, dtype)
        x = x[(self.bonds(x) > self.r_min).all(-1)]
        target = self.lo + (self.hi - self.lo) * torch.rand(len(x), generator=generator, dtype=dtype)
        r = self.bonds(x)
        # largest scale keeping every bond above r_min (bonds >= 0 never cross it)
        lim = torch.where(r < 0, self.r_min / r.clamp(max=-1e-300), torch.full_like(r, math.inf)).amin(-1)
        s_hi = torch.minimum(lim * (1 - 1e-9), torch.full_like(lim, 1e3))
        keep = self.energy(s_hi[:, None] * x) >= target
        x, target, s_hi = x[keep], target[keep], s_hi[keep]
        s_lo = torch.zeros_like(s_hi)
        for _ in range(60):  # bisection: energy(s x) increases with s on [0, s_hi]
            mid = (s_lo + s_hi) / 2
            up = self.energy(mid[:, None] * x) < target
            s_lo, s_hi = torch.where(up, mid, s_lo), torch.where(up, s_hi, mid)
        return ((s_lo + s_hi) / 2)[:, None] * x


def alpha_saddle_energy(n_bonds: int, alpha: float) -> float:
    r"""Lowest saddle of an alpha chain's potential :math:`\sum V(r_i)` on bonds with :math:`\sum r_i = 0`
    (``n_bonds`` = N periodic, N + 1 fixed): below it the well around 0 is bounded.

    At a critical point every :math:`V'(r_i) = r_i + \alpha r_i^2` is equal, so the bonds take two values
    with :math:`r_a + r_b = -1/\alpha`; with :math:`k` bonds at :math:`r_a` and the sum zero,
    :math:`r_b = k/(\alpha(m - 2k))`. (N = 3, alpha = 1/4: 16 periodic, 8 fixed.)
    """
    m, V = n_bonds, (lambda r: r * r / 2 + alpha * r**3 / 3)
    out = []
    for k in range(1, m):
        if 2 * k != m:
            rb = k / (alpha * (m - 2 * k))
            ra = -1 / alpha - rb
            out.append(k * V(ra) + (m - k) * V(rb))
    return min(e for e in out if e > 0)


def fput(n: int = 3, kind: str = "alpha", boundary: str = "periodic", coupling: float | None = None,
         amplitude: float = 1.0, regime: str = "regular") -> DynamicalSystem:
    r"""FPUT chain :math:`H = \sum p_i^2/2 + \sum_{\rm bonds} V(r)`, :math:`V(r) = r^2/2 + \alpha r^3/3 +
    \beta r^4/4`, bond :math:`r = q_{i+1} - q_i`.

    ``boundary="periodic"`` (:math:`q_{N+1} = q_1`): energy and total momentum (2 integrals);
    ``"fixed"`` (:math:`q_0 = q_{N+1} = 0`): energy only. Non-integrable in general, but at the default
    amplitude (bonds up to 2, far below the alpha chain's saddle) the N = 3 chains are close to integrable
    over the sampled times: their largest Lyapunov exponent is indistinguishable from zero
    (:func:`sciml.dynamics.lyapunov_exponent`), so approximate integrals exist on the data.

    **Exception: the periodic beta chain with N = 3 is integrable.** Its three bonds sum to zero, and for
    three numbers with zero sum :math:`\sum r_i^4 = (\sum r_i^2)^2/2`, so the potential depends only on
    :math:`\rho^2 = \sum r_i^2` - a central potential in the plane of the two non-zero normal modes
    :math:`u_k = e_k\cdot q`, :math:`e_1 = (1,-1,0)/\sqrt2`, :math:`e_2 = (1,1,-2)/\sqrt6`. Its angular
    momentum :math:`L = u_1 (e_2\cdot p) - u_2 (e_1\cdot p)` is a third integral (kept to 1e-13 by the
    integrator); ``expected`` is 3 there, a lower bound as for periodic Toda: with :math:`P \ne 0` the
    centre of mass is a clock, and the internal angles give further integrals smooth on :math:`P \ne 0`.
    ``coupling``: alpha (default 0.25) or beta (default 1.0).

    ``regime`` picks the initial states:

    * ``"regular"`` (default): :math:`q_i, p_i \sim U(-a, a)`, ``a = amplitude``; alpha chains reject
      states above 3/4 of a single bond's escape barrier :math:`1/(6\alpha^2)` (the cubic potential is
      unbounded below). The motion is quasi-periodic at N = 3 (no chaotic trajectory over T = 500).
    * ``"chaotic"``: where the N = 3 chains are measurably chaotic, so that the data show only the global
      integrals (``docs/conservation.md``). Alpha chains: the energy shell :math:`[0.94, 0.995]\,E_s`
      (periodic: of the internal energy, without :math:`P^2/2N`) below the lowest saddle :math:`E_s`
      (:func:`alpha_saddle_energy`), from a box of half width :math:`\max(a, 4)`, keeping states whose
      bonds all exceed :math:`-1/\alpha` (then the straight path to 0 stays below :math:`E_s`, so the
      state is inside the bounded well); 81-84% of the N = 3 trajectories are chaotic over T = 300, while
      further below :math:`E_s` the fixed chain is regular (none chaotic up to :math:`0.75 E_s`).
      Beta chains: the box with :math:`a = \max(a, 2)` (56% of the fixed chain's trajectories chaotic;
      :math:`a = 3` gives 91% but moves too fast for finite differences at :math:`\Delta t = 0.1`).
    """
    if kind not in ("alpha", "beta") or boundary not in ("periodic", "fixed") or n < 2:
        raise ValueError("fput: kind in {alpha, beta}, boundary in {periodic, fixed}, n >= 2")
    if regime not in ("regular", "chaotic"):
        raise ValueError(f"fput: regime is 'regular' or 'chaotic', got {regime!r}")
    N = n
    c = (0.25 if kind == "alpha" else 1.0) if coupling is None else float(coupling)
    al, be = (c, 0.0) if kind == "alpha" else (0.0, c)

    def dVr(r: Tensor) -> Tensor:
        return r + al * r * r + be * r * r * r

    def Vr(r: Tensor) -> Tensor:
        return r * r / 2 + al * r**3 / 3 + be * r**4 / 4

    def bonds(q: Tensor) -> Tensor:
        if boundary == "periodic":
            return torch.roll(q, -1, dims=-1) - q                    # r_i = q_{i+1} - q_i, i = 1..N
        z = torch.zeros_like(q[..., :1])
        qq = torch.cat([z, q, z], -1)
        return qq[..., 1:] - qq[..., :-1]                              # N + 1 bonds

    def dV(q: Tensor) -> Tensor:
        f = dVr(bonds(q))                                             # dV/dq_i = V'(r_{i-1}) - V'(r_i)
        if boundary == "periodic":
            return torch.roll(f, 1, dims=-1) - f
        return f[..., :-1] - f[..., 1:]

    H = lambda x: _T(x[..., N:]) + Vr(bonds(x[..., :N])).sum(-1)  # noqa: E731
    invariants: dict[str, Callable[[Tensor], Tensor]] = {"H": H}
    if boundary == "periodic":
        invariants["P"] = lambda x: x[..., N:].sum(-1)
        if N == 3 and al == 0.0:
            # rows e_1, e_2: the normal-mode coordinates u = E q and momenta pi = E p; L = u_1 pi_2 - u_2 pi_1
            E = torch.tensor([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]], dtype=torch.float64)
            E = E / E.norm(dim=1, keepdim=True)

            def L(x: Tensor) -> Tensor:
                u, pi = x[..., :3] @ E.to(x).T, x[..., 3:] @ E.to(x).T
                return u[..., 0] * pi[..., 1] - u[..., 1] * pi[..., 0]
            invariants["L"] = L
    amp_q, shell = amplitude, None
    if regime == "regular":
        # the cubic alpha potential has an escape barrier V(-1/alpha) = 1/(6 alpha^2): stay below 3/4 of it
        e_max = 0.75 / (6 * al * al) if al else None
        where = f"q_i ~ U(-{amp_q}, {amp_q}), p_i ~ U(-{amplitude}, {amplitude})"
    elif al:
        e_s = alpha_saddle_energy(N if boundary == "periodic" else N + 1, al)
        lo, hi = 0.94 * e_s, 0.995 * e_s
        amp_q = amplitude = max(amplitude, 4.0)
        e_max = None

        def internal(x: Tensor) -> Tensor:
            # the internal energy: periodic chains without the centre of mass's P^2 / 2N
            return H(x) - (x[..., N:].sum(-1) ** 2 / (2 * N) if boundary == "periodic" else 0.0)
        where = (f"q_i, p_i ~ U(-{amp_q}, {amp_q}) with {'internal ' if boundary == 'periodic' else ''}energy in "
                 f"[{lo:.3g}, {hi:.3g}] = [0.94, 0.995] x the lowest saddle, all bonds > {-1 / al:g} (chaotic regime;"
                 f" scaled radially onto the shell where the box rarely hits it)")
        shell = EnergyShellRegion((0.0,) * (2 * N), (amp_q,) * (2 * N), where, energy=internal,
                                  bonds=lambda x: bonds(x[..., :N]), lo=lo, hi=hi, r_min=-1.0 / al)
    else:
        e_max = None
        amp_q = amplitude = max(amplitude, 2.0)
        where = f"q_i, p_i ~ U(-{amp_q}, {amp_q}) (chaotic regime)"
    return DynamicalSystem(
        name=f"fput-{kind}-{boundary}", dim=2 * N, vector_field=_field(N, dV), n_dof=N, hamiltonian=H,
        dT_dp=_kin, dV_dq=dV,
        region=shell or InitialRegion((0.0,) * (2 * N), (amp_q,) * N + (amplitude,) * N, where),
        invariants=invariants, expected=len(invariants), expected_involution=len(invariants),
        params={"n": N, "alpha": al, "beta": be, "boundary": boundary, "regime": regime},
        # integrable internal flow + a free centre of mass: like periodic Toda, "at least" (see toda)
        expected_is_lower_bound="L" in invariants,
        notes=("integrable at N = 3: energy, momentum and the normal-mode angular momentum L"
               if "L" in invariants else
               "non-integrable: energy" + (" and momentum" if boundary == "periodic" else "")), max_energy=e_max,
        admissible=shell.contains if shell else None)


# ---------------------------------------------------------------------------------------------------
# rational Calogero-Moser
def _cm_lax(x: Tensor, N: int, g: float) -> tuple[Tensor, Tensor]:
    r"""Real and imaginary parts of :math:`L = \mathrm{diag}(p) + i\,g/(q_i - q_j)` (off-diagonal)."""
    q, p = _split(x, N)
    dq = q[..., :, None] - q[..., None, :]
    eye = torch.eye(N, dtype=x.dtype, device=x.device)
    A = g * (1 - eye) / (dq + eye)                    # eye avoids 0/0 on the diagonal
    return torch.diag_embed(p), A


def _cm_invariants(x: Tensor, N: int, g: float) -> list[Tensor]:
    """[tr L^1..tr L^N, then K_k = tr(QL^k) tr L - tr Q tr L^{k+1}, k = 1..N-1]."""
    R0, A = _cm_lax(x, N, g)
    Q = torch.diag_embed(x[..., :N])
    R, I = R0, A                                       # L^1
    traces, qtraces = [], []
    for _ in range(N):
        traces.append(torch.diagonal(R, dim1=-2, dim2=-1).sum(-1))
        qtraces.append(torch.diagonal(Q @ R, dim1=-2, dim2=-1).sum(-1))
        R, I = R @ R0 - I @ A, R @ A + I @ R0      # L^{k+1} = L^k L
    out = list(traces)
    trQ = x[..., :N].sum(-1)
    trL1 = traces[0]
    for k in range(1, N):
        tr_next = traces[k]                             # tr L^{k+1}
        out.append(qtraces[k - 1] * trL1 - trQ * tr_next)   # tr(QL^k) I_1 - tr Q I_{k+1}
    return out


def calogero(n: int = 3, g: float = 1.0, spacing: float = 2.0, amplitude: float = 1.0) -> DynamicalSystem:
    r"""Rational Calogero-Moser :math:`H = \sum p_i^2/2 + g^2\sum_{i<j} (q_i - q_j)^{-2}`.

    Maximally superintegrable (2N-1 integrals, Wojciechowski 1983). Known integrals given here: the
    Lax traces :math:`I_k = \mathrm{tr}\,L^k` (N, in involution, Moser 1975) and, since
    :math:`\tfrac{d}{dt}\mathrm{tr}(QL^k) = I_{k+1}`, the N-1 combinations
    :math:`K_k = \mathrm{tr}(QL^k)\,I_1 - \mathrm{tr}\,Q\,I_{k+1}` - together 2N-1 independent ones.
    Particles start ordered at ``spacing`` apart (+- 0.25 spacing jitter) and repel, so never collide.
    """
    if n < 2:
        raise ValueError("calogero needs n >= 2")
    N = n

    def dV(q: Tensor) -> Tensor:
        dq = q[..., :, None] - q[..., None, :]
        eye = torch.eye(N, dtype=q.dtype, device=q.device)
        return (-2 * g * g * (1 - eye) / (dq + eye) ** 3).sum(-1)

    def V(q: Tensor) -> Tensor:
        dq = q[..., :, None] - q[..., None, :]
        eye = torch.eye(N, dtype=q.dtype, device=q.device)
        return 0.5 * (g * g * (1 - eye) / (dq + eye) ** 2).sum((-1, -2))

    H = lambda x: _T(x[..., N:]) + V(x[..., :N])  # noqa: E731
    names = [f"tr L^{k}" for k in range(1, N + 1)] + [f"K_{k}" for k in range(1, N)]
    invariants = {nm: (lambda x, i=i: _cm_invariants(x, N, g)[i]) for i, nm in enumerate(names)}
    centre = tuple(spacing * (i - (N - 1) / 2) for i in range(N)) + (0.0,) * N
    jit = 0.25 * spacing
    return DynamicalSystem(
        name="calogero", dim=2 * N, vector_field=_field(N, dV), n_dof=N, hamiltonian=H, dT_dp=_kin, dV_dq=dV,
        region=InitialRegion(centre, (jit,) * N + (amplitude,) * N,
                             f"q_i = {spacing}(i - (N-1)/2) + U(-{jit}, {jit}), p_i ~ U(-{amplitude}, {amplitude})"),
        invariants=invariants, expected=2 * N - 1, expected_involution=N, params={"n": N, "g": g},
        notes="maximally superintegrable scattering system: 2N-1")


# ---------------------------------------------------------------------------------------------------
# non-polynomial invariants: pendulum, Morse, Yukawa, SIR, Henon-Heiles
def pendulum(amplitude: float = 1.0, gap: float = 0.1) -> DynamicalSystem:
    r"""Mathematical pendulum :math:`H = p^2/2 - \cos q`; one integral, H (transcendental in q).

    Librating for :math:`-1 \le H < 1`, rotating for :math:`H > 1` (q then grows without bound while H
    stays periodic in q). The separatrix :math:`H = 1`, through the hyperbolic point :math:`(\pm\pi, 0)`
    where the period diverges, is kept out: states with :math:`|H - 1| < \text{gap}` are rejected.
    Region :math:`q \sim U(-\pi, \pi)`, :math:`p \sim U(-1.5a, 1.5a)`; at ``a = 1`` 78% of the kept states
    librate (more rotate as ``a`` grows).
    """
    dV = lambda q: torch.sin(q)  # noqa: E731
    H = lambda x: 0.5 * x[..., 1] ** 2 - torch.cos(x[..., 0])  # noqa: E731
    pw = 1.5 * amplitude
    return DynamicalSystem(
        name="pendulum", dim=2, vector_field=_field(1, dV), n_dof=1, hamiltonian=H, dT_dp=_kin, dV_dq=dV,
        region=InitialRegion((0.0, 0.0), (math.pi, pw),
                             f"q ~ U(-pi, pi), p ~ U(-{pw:g}, {pw:g}), |H - 1| >= {gap:g} (no separatrix)"),
        invariants={"H": H}, expected=1, expected_involution=1, params={"gap": gap},
        notes="one degree of freedom: one integral (librating and rotating orbits)",
        admissible=lambda x: (H(x) - 1.0).abs() >= gap)


def morse(depth: float = 1.0, alpha: float = 1.0, amplitude: float = 1.0, e_max: float = 0.8) -> DynamicalSystem:
    r"""Morse oscillator :math:`H = p^2/2 + D(1 - e^{-\alpha q})^2`; one integral, H.

    Bound states have :math:`H < D` (the dissociation energy, where the period diverges); initial states
    are kept below ``e_max`` D. The box is the bounding box of :math:`\{H \le e_{\max} D\}`,
    :math:`\alpha q \in [-\ln(1+\sqrt{e_{\max}}), -\ln(1-\sqrt{e_{\max}})]`,
    :math:`|p| \le \sqrt{2 e_{\max} D}`, its half widths scaled by ``a`` about its centre (``a >= 1``:
    every such state can be drawn).
    """
    if not 0 < e_max < 1:
        raise ValueError(f"morse: e_max is a fraction of the well depth in (0, 1), got {e_max}")
    D, al = depth, alpha
    dV = lambda q: 2 * D * al * torch.exp(-al * q) * (1 - torch.exp(-al * q))  # noqa: E731
    H = lambda x: 0.5 * x[..., 1] ** 2 + D * (1 - torch.exp(-al * x[..., 0])) ** 2  # noqa: E731
    s = math.sqrt(e_max)
    q_lo, q_hi = -math.log1p(s) / al, -math.log1p(-s) / al
    c, hw, pw = (q_lo + q_hi) / 2, amplitude * (q_hi - q_lo) / 2, amplitude * math.sqrt(2 * e_max * D)
    return DynamicalSystem(
        name="morse", dim=2, vector_field=_field(1, dV), n_dof=1, hamiltonian=H, dT_dp=_kin, dV_dq=dV,
        region=InitialRegion((c, 0.0), (hw, pw), f"q ~ U({c - hw:.3g}, {c + hw:.3g}), p ~ U(-{pw:.3g}, {pw:.3g}), "
                                                  f"H <= {e_max:g} D (bound)"),
        invariants={"H": H}, expected=1, expected_involution=1, params={"depth": D, "alpha": al},
        notes="one degree of freedom: one integral (bound, anharmonic)", max_energy=e_max * D)


def _turning_point(g: Callable[[Tensor], Tensor], lo: Tensor, hi: Tensor) -> Tensor:
    """The root of ``g`` between ``lo`` and ``hi`` (where ``g`` changes sign once), by 60 bisections."""
    above_lo = g(lo) > 0
    for _ in range(60):
        mid = (lo + hi) / 2
        same = (g(mid) > 0) == above_lo
        lo, hi = torch.where(same, mid, lo), torch.where(same, hi, mid)
    return (lo + hi) / 2


def yukawa(screening: float = 2.0, amplitude: float = 1.0, e_max: float = -0.05, r_floor: float = 0.5,
           eccentricity: float = 0.2) -> DynamicalSystem:
    r"""Planar motion in the screened Coulomb (Yukawa) potential :math:`V(r) = -e^{-r/\lambda}/r`,
    :math:`H = |p|^2/2 + V(r)`, state :math:`(x, y, p_x, p_y)`; two integrals, H and
    :math:`L = x p_y - y p_x`.

    Unlike Kepler (:math:`\lambda \to \infty`) the orbits precess, so a bound non-circular orbit fills an
    annulus densely: no third (Runge-Lenz) integral. Initial states: :math:`x, y \sim U(-1.5a, 1.5a)`,
    :math:`p_x, p_y \sim U(-a, a)`, kept when bound with :math:`H \le` ``e_max`` :math:`< 0` (then
    :math:`r \le 1/|H|`), with pericentre :math:`r_{\min} \ge` ``r_floor`` (away from the singularity: at
    0.5 a pericentre passage lasts about :math:`r_{\min}^{3/2} \approx 0.35`, seven samples at
    :math:`\Delta t = 0.05`, and Yoshida-4 with :math:`h = 0.01` keeps H to about 1e-7) and eccentricity
    :math:`(r_{\max} - r_{\min})/(r_{\max} + r_{\min}) \ge` ``eccentricity``: on circular orbits
    :math:`\nabla H \parallel \nabla L`, so they are kept out. About 4% of box states qualify.
    """
    if not e_max < 0:
        raise ValueError(f"yukawa: e_max must be negative (bound orbits), got {e_max}")
    lam = screening

    def dV(q: Tensor) -> Tensor:
        r = q.norm(dim=-1, keepdim=True)
        return torch.exp(-r / lam) * (1 / r**2 + 1 / (lam * r)) * q / r   # V'(r) q/r

    def V(q: Tensor) -> Tensor:
        r = q.norm(dim=-1)
        return -torch.exp(-r / lam) / r

    H = lambda x: _T(x[..., 2:]) + V(x[..., :2])  # noqa: E731
    L = lambda x: x[..., 0] * x[..., 3] - x[..., 1] * x[..., 2]  # noqa: E731

    def admissible(x: Tensor) -> Tensor:
        # for E < 0, {r : V_eff(r) <= E} is one interval [r_min, r_max] around r0 (V_eff < 0 iff
        # r e^{-r/lam} > L^2/2, unimodal in r), so r_min >= r_floor iff r0 >= r_floor and V_eff(r_floor) > E;
        # r_max <= 1/|E| since V >= -1/r. The turning points for the eccentricity by bisection.
        E, L2, r0 = H(x), L(x) ** 2, x[..., :2].norm(dim=-1)
        veff = lambda r, L2, E: L2 / (2 * r * r) - torch.exp(-r / lam) / r - E  # noqa: E731
        floor = torch.full_like(r0, r_floor)
        ok = (E <= e_max) & (r0 >= r_floor) & (veff(floor, L2, E) > 0)
        i = ok.nonzero().squeeze(-1)
        if i.numel():
            g = lambda r: veff(r, L2[i], E[i])  # noqa: E731
            r_min, r_max = _turning_point(g, floor[i], r0[i]), _turning_point(g, r0[i], 1 / E[i].abs())
            ok[i] = (r_max - r_min) >= eccentricity * (r_max + r_min)
        return ok

    a, w = amplitude, 1.5 * amplitude
    return DynamicalSystem(
        name="yukawa", dim=4, vector_field=_field(2, dV), n_dof=2, hamiltonian=H, dT_dp=_kin, dV_dq=dV,
        region=InitialRegion((0.0,) * 4, (w, w, a, a),
                             f"x, y ~ U(-{w:g}, {w:g}), p_x, p_y ~ U(-{a:g}, {a:g}); H <= {e_max:g}, "
                             f"r_min >= {r_floor:g}, eccentricity >= {eccentricity:g}"),
        invariants={"H": H, "L": L}, expected=2, expected_involution=2, params={"screening": lam},
        notes="central, not Kepler: energy and angular momentum (precessing orbits fill annuli)",
        admissible=admissible)


def sir(beta: float = 0.5, gamma: float = 0.125, amplitude: float = 1.0) -> DynamicalSystem:
    r"""SIR epidemic in :math:`(S, I)`: :math:`\dot S = -\beta S I`, :math:`\dot I = \beta S I - \gamma I`;
    one integral :math:`C = S + I - (\gamma/\beta)\ln S`.

    A first-order system, not Hamiltonian in :math:`(S, I)` (``n_dof = None``, layout ``"none"``, no
    ``hamiltonian``, integrated by DOP853). It is Hamiltonian in :math:`(u, v) = (\ln S, \ln I)`:
    :math:`\dot u = \partial K/\partial v`, :math:`\dot v = -\partial K/\partial u` with
    :math:`K = \gamma u - \beta(e^u + e^v) = -\beta C` (so ``expected_involution = 1``). Every point of
    :math:`I = 0` is an equilibrium; trajectories end there at :math:`S_\infty < \gamma/\beta`.
    Region :math:`S \sim U(0.6 \mp 0.35a)`, :math:`I \sim U(0.1 \mp 0.09a)`, kept where
    :math:`S, I > 0` and :math:`S + I \le 1` (fractions of a population). The rates
    (:math:`R_0 = \beta/\gamma = 4`) put every epidemic's peak before :math:`t = 26` and keep it visible
    (:math:`I \ge` 1% of the peak) up to :math:`t = 50`, the length of a default ``sciml simulate`` run.
    """
    if not (beta > 0 and gamma > 0):
        raise ValueError(f"sir: beta and gamma must be > 0, got {beta}, {gamma}")

    def f(x: Tensor) -> Tensor:
        S, I = x[..., 0], x[..., 1]
        return torch.stack([-beta * S * I, beta * S * I - gamma * I], -1)

    C = lambda x: x[..., 0] + x[..., 1] - (gamma / beta) * torch.log(x[..., 0])  # noqa: E731
    ws, wi = 0.35 * amplitude, 0.09 * amplitude
    return DynamicalSystem(
        name="sir", dim=2, vector_field=f,
        region=InitialRegion((0.6, 0.1), (ws, wi), f"S ~ U(0.6 -+ {ws:g}), I ~ U(0.1 -+ {wi:g}); S, I > 0, "
                                                   f"S + I <= 1"),
        invariants={"C": C}, expected=1, expected_involution=1, params={"beta": beta, "gamma": gamma},
        notes="first-order, not Hamiltonian in (S, I): one integral, C = S + I - (gamma/beta) ln S",
        admissible=lambda x: (x[..., 0] > 0) & (x[..., 1] > 0) & (x[..., 0] + x[..., 1] <= 1))


def henon_heiles(energy: tuple[float, float] = (0.12, 0.16), amplitude: float = 1.0) -> DynamicalSystem:
    r"""Henon-Heiles :math:`H = (p_x^2 + p_y^2 + x^2 + y^2)/2 + x^2 y - y^3/3`; one integral, H.

    Non-integrable; below the escape energy 1/6 the bounded well is the triangle with vertices at the
    three saddles :math:`(0, 1), (\pm\sqrt3/2, -1/2)`, since
    :math:`V - 1/6 = -\tfrac13 (y + \tfrac12)(y - 1 - \sqrt3 x)(y - 1 + \sqrt3 x)`. Initial states lie on
    the energy shell ``energy`` (default :math:`[0.12, 0.16]`: 64% of its trajectories are chaotic, 80% of
    those above 0.14; ``docs/systems.md``) inside the triangle, drawn from its bounding box
    :math:`x \in [-\sqrt3/2, \sqrt3/2]`, :math:`y \in [-1/2, 1]`, :math:`|p_i| \le \sqrt{2 E_{hi}}`.
    ``amplitude`` is not used (the shell and the triangle fix the region): any value but 1 is refused.
    """
    if amplitude != 1.0:
        raise ValueError(f"henon-heiles: amplitude {amplitude:g} would do nothing (the energy shell {energy} and the "
                         f"triangle fix the initial states); leave --amplitude at 1")
    lo, hi = energy
    if not 0 < lo < hi < 1 / 6:
        raise ValueError(f"henon-heiles: energy shell must satisfy 0 < lo < hi < 1/6 (bounded), got {energy}")

    def dV(q: Tensor) -> Tensor:
        x, y = q[..., 0], q[..., 1]
        return torch.stack([x + 2 * x * y, y + x * x - y * y], -1)

    def H(x: Tensor) -> Tensor:
        X, Y = x[..., 0], x[..., 1]
        return _T(x[..., 2:]) + 0.5 * (X * X + Y * Y) + X * X * Y - Y**3 / 3

    def inside(x: Tensor) -> Tensor:
        X, Y = x[..., 0], x[..., 1]
        s3 = math.sqrt(3.0)
        return (Y > -0.5) & (Y < 1 + s3 * X) & (Y < 1 - s3 * X)

    pw = math.sqrt(2 * hi)
    return DynamicalSystem(
        name="henon-heiles", dim=4, vector_field=_field(2, dV), n_dof=2, hamiltonian=H, dT_dp=_kin, dV_dq=dV,
        region=InitialRegion((0.0, 0.25, 0.0, 0.0), (math.sqrt(3) / 2, 0.75, pw, pw),
                             f"H in [{lo:g}, {hi:g}] inside the saddle triangle (chaotic shell)"),
        invariants={"H": H}, expected=1, expected_involution=1, params={"energy": [lo, hi]},
        notes="non-integrable, chaotic shell below the escape energy 1/6: energy only",
        min_energy=lo, max_energy=hi, admissible=inside)


# ---------------------------------------------------------------------------------------------------
SYSTEMS: dict[str, Callable[..., DynamicalSystem]] = {
    "ho1d": lambda n=None, **kw: harmonic_1d(**kw),
    "ho2d-iso": lambda n=None, **kw: harmonic_2d((1.0, 1.0), **kw),
    "ho2d-1to2": lambda n=None, **kw: harmonic_2d((1.0, 2.0), **kw),
    "ho2d-incommensurate": lambda n=None, **kw: harmonic_2d((1.0, math.sqrt(2.0)), **kw),
    "toda-open": lambda n=3, **kw: toda(n, periodic=False, **kw),
    "toda-periodic": lambda n=3, **kw: toda(n, periodic=True, **kw),
    "fput-alpha-periodic": lambda n=3, **kw: fput(n, "alpha", "periodic", **kw),
    "fput-alpha-fixed": lambda n=3, **kw: fput(n, "alpha", "fixed", **kw),
    "fput-beta-periodic": lambda n=3, **kw: fput(n, "beta", "periodic", **kw),
    "fput-beta-fixed": lambda n=3, **kw: fput(n, "beta", "fixed", **kw),
    "calogero": lambda n=3, **kw: calogero(n, **kw),
    "pendulum": lambda n=None, **kw: pendulum(**kw),
    "morse": lambda n=None, **kw: morse(**kw),
    "yukawa": lambda n=None, **kw: yukawa(**kw),
    "sir": lambda n=None, **kw: sir(**kw),
    "henon-heiles": lambda n=None, **kw: henon_heiles(**kw),
}
FIXED_DIM = {"ho1d": 2, "ho2d-iso": 4, "ho2d-1to2": 4, "ho2d-incommensurate": 4, "pendulum": 2, "morse": 2,
             "yukawa": 4, "sir": 2, "henon-heiles": 4}
"""State dimension of the systems without a size ``n`` (the others: ``2 n``)."""
HAS_N = {k for k in SYSTEMS if k not in FIXED_DIM}


def state_dim(name: str, n: int | None = None) -> int:
    """The state dimension ``d`` of catalogue system ``name`` with ``n`` particles / sites, without
    building it (so a command can size its output before an absurd ``n`` allocates anything).

    Raises:
        KeyError: unknown name (the message lists the catalogue).
    """
    if name not in SYSTEMS:
        raise KeyError(f"unknown system {name!r}; choose one of {', '.join(SYSTEMS)}")
    if name in HAS_N:
        return 2 * (n if n is not None else 3)
    return FIXED_DIM[name]


def scratch_values(name: str, n: int | None = None) -> int:
    """About how many float64 temporaries one evaluation of the force or the energy needs per state:
    ``4 N^2`` for Calogero-Moser (its pairwise ``(N, N)`` differences), ``4 d`` for the others."""
    d = state_dim(name, n)
    return 4 * (d // 2) ** 2 if name == "calogero" else 4 * d


def get_system(name: str, n: int | None = None, **kwargs) -> DynamicalSystem:
    """Catalogue lookup; ``n`` (particles / sites) for the lattices and Calogero-Moser.

    Raises:
        KeyError: unknown name (the message lists the catalogue).
    """
    if name not in SYSTEMS:
        raise KeyError(f"unknown system {name!r}; choose one of {', '.join(SYSTEMS)}")
    if name in HAS_N:
        return SYSTEMS[name](n if n is not None else 3, **kwargs)
    return SYSTEMS[name](**kwargs)
