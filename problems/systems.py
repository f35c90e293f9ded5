r"""The catalogue of Hamiltonian test systems for conservation-law discovery, with known invariants.

Every system uses the ``qp`` layout ``x = (q_1..q_N, p_1..p_N)``, unit masses, ``T(p) = |p|^2/2``.
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
==========================  ===  =========  ===========  ==============================================

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

__all__ = ["SYSTEMS", "get_system", "state_dim", "scratch_values", "harmonic_1d", "harmonic_2d", "toda", "fput", "calogero"]


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
}
HAS_N = {k for k in SYSTEMS if not k.startswith("ho")}


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
    return 2 if name == "ho1d" else 4


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
