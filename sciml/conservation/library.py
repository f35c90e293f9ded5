r"""A polynomial start for each candidate: the best conserved polynomial, found by linear algebra.

Trained from random initialisations, a candidate network often settles on an *approximate* integral
(1e-4) although an exact one that scores 100x lower exists: the energy of a fixed FPUT chain, the total
momentum of a periodic one (``docs/conservation.md``). Many exact integrals are low-degree polynomials,
and within a polynomial library the best candidate is a global optimum one can compute.

For monomials :math:`\phi(z)` of the standardised state up to degree :math:`p` and a candidate
:math:`H = c^\top\phi`, the pointwise loss of neural deflation (with :math:`\alpha = 1`) is the ratio
:math:`\langle\nabla H,\hat v\rangle^2 / \|(I-QQ^\top)\nabla H\|^2`. Its ratio of *means* over the data,

.. math::

    R(c) = \frac{c^\top A c}{c^\top B c},\qquad
    A = \overline{(J\hat v)(J\hat v)^\top},\quad B = \overline{J(I - QQ^\top)J^\top},
    \qquad J = \partial\phi/\partial z \in \mathbb{R}^{F\times d},

is a generalised Rayleigh quotient: its minimum is the smallest generalised eigenvalue of
:math:`(A, B)`, found exactly. :math:`Q` spans the gradients of the earlier laws at each point, so
functions of them (:math:`B`-null directions) are excluded, which is deflation in the library. An exact
polynomial integral gives :math:`R \approx 0` (finite-difference error, ~1e-9 in float64), an approximate
one :math:`R \sim 10^{-5}`-:math:`10^{-3}`.

A solution that is exact to the accuracy of the velocities (:func:`library_fit`'s ``exact``) is taken as
the candidate as it is, with no training; any other only *starts* one of the candidate's initialisations
(:class:`ConservedQuantity` with a polynomial head) beside the random ones
(:func:`sciml.conservation.candidate.start_candidate`). The approach is that of the Sparse Invariant
Detector (Liu et al. 2024, linear in a given basis), used here inside the neural deflation.

**The dictionary and the order of the solves.** Beside the monomials of degree 1..p the library may hold
atoms :math:`a(x)` of the raw state times monomials of degree 0..q (:mod:`sciml.conservation.features`:
:math:`\log|x_i|`, :math:`1/|x_i - x_j|`, :math:`e^{x_i - x_j}`, :math:`\cos x_i`, ...; each atom centred
and scaled to unit spread on the data). Its columns are the monomials of degree 1, 2, ..., p, then the
atoms x degree 0, x degree 1, ... (:func:`build_library` stops at ``max_features`` columns). A *stage* is
the monomials of degree <= 1, <= 2, ..., <= p, then for each atom degree q the atoms x degree <= q beside
the monomials of the highest degree that the points support (:meth:`MonomialFeatures.stages`: at d = 10
the atoms x degree <= 1 of periodic Toda, 770 columns, leave room for the cubic monomials, not the
quartic ones, and the cubic integral :math:`\sum p^3/3 + \sum (p_i + p_{i+1}) e^{q_i - q_{i+1}}` is
exact there). :math:`A`, :math:`G` and
:math:`E` do not depend on the earlier laws and are assembled once per discovery (``cache``), over chunks
of points, never holding more than one chunk's Jacobians; the deflated :math:`B = G - \sum_j M_j`,
:math:`M_j = \overline{(Jq_j)(Jq_j)^\top}` over the earlier laws' basis vectors :math:`q_j`, once per
candidate. The stages are solved in turn on their columns and the first exact one wins: a polynomial
before any atom, a low degree before a high one. With no exact stage, the solution on the largest
polynomial stage of at most ``head_features`` columns starts a network (its head evaluates only those
columns: ``MonomialFeatures.leading``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn

from ..autodiff import batch, jacobian, point_function
from ..run.errors import UserError
from .features import FEATURES, Atom, Feature, select_atoms
from .losses import deflation_factor

__all__ = ["MonomialFeatures", "Stage", "LibraryFit", "n_monomials", "library_degree_for", "library_fit",
           "feature_gradients", "whitening", "build_library"]

log = logging.getLogger(__name__)


def n_monomials(dim: int, degree: int) -> int:
    """Number of monomials of degree 1..``degree`` in ``dim`` variables: :math:`\\binom{d+p}{p} - 1`."""
    return math.comb(dim + degree, degree) - 1


def library_degree_for(dim: int, degree: int, max_features: int) -> int:
    """The largest degree <= ``degree`` whose library has at most ``max_features`` monomials (0: none)."""
    while degree > 0 and n_monomials(dim, degree) > max_features:
        degree -= 1
    return degree


def _rows(dim: int, degree: int, constant: bool) -> list[tuple[int, ...]]:
    """Monomials as ``degree`` factor indices into ``(1, w_1..w_d)``, sorted by degree (stable)."""
    rows = [c for c in itertools.combinations_with_replacement(range(dim + 1), degree) if constant or any(c)]
    return sorted(rows, key=lambda c: sum(1 for i in c if i))


class Stage(NamedTuple):
    """One stage of the library's solves: the first ``monomials`` columns (the monomials of degree <=
    ``degree``) and, with ``atom_degree`` >= 0, the atom columns up to ``block`` (atoms x monomials of degree
    <= ``atom_degree``). ``columns`` is how many it solves over, ``block`` the leading block that holds it
    (its solution's coefficients are 0 in between: the head of a network or an exact solution evaluates
    ``leading(block)``)."""

    columns: int
    degree: int
    atom_degree: int
    monomials: int
    block: int

    def index(self) -> Tensor:
        """The stage's column indices into the library."""
        mono = torch.arange(self.monomials)
        if self.block == self.monomials:
            return mono
        return torch.cat([mono, torch.arange(self.block - (self.columns - self.monomials), self.block)])


class MonomialFeatures(nn.Module):
    r"""All monomials of degree 1..p of :math:`w = zT` ``(n, d) -> (n, F)``, as products of ``p`` factors
    from :math:`(1, w_1, \dots, w_d)` (a gather and a product: no ``pow``, so gradients are safe at 0),
    sorted by degree; optionally followed by atom terms :math:`\tilde a_k(x)\,m(w)` (:meth:`with_atoms`).

    ``transform`` :math:`T` (default identity) is a linear change of variables; it leaves the space of
    polynomials of each degree unchanged but not its conditioning: with strongly correlated coordinates
    (a drifting centre of mass moves every :math:`q_i` together) a polynomial in differences such as
    :math:`(q_2 - q_1)^4` is a near-cancelling sum of large monomials of :math:`z` and is lost to round-off
    in the eigenproblem; in whitened coordinates (:func:`whitening`) it is a few moderate ones.

    Atoms see the raw state :math:`x = z\sigma + \mu` (buffers ``x_shift``, ``x_scale``) and are centred
    and scaled, :math:`\tilde a = (a - \bar a)/s_a`, from the library's points. The module is
    self-describing: :meth:`load_state_dict` into any ``MonomialFeatures`` restores its columns and atoms
    (a user feature by its name in :data:`~sciml.conservation.features.FEATURES`).
    """

    def __init__(self, dim: int, degree: int, transform: Tensor | None = None):
        super().__init__()
        if degree < 1:
            raise ValueError(f"degree must be >= 1, got {degree}")
        self.register_buffer("index", torch.tensor(_rows(dim, degree, False), dtype=torch.long))
        self.register_buffer("transform", torch.eye(dim, dtype=torch.float64) if transform is None
                             else torch.as_tensor(transform, dtype=torch.float64).clone())
        self.dim, self.degree, self.atom_degree = dim, degree, -1
        self.atoms: list[Atom] = []
        for name, shape in (("atom_index", (0, 0)), ("atom_of", (0,))):
            self.register_buffer(name, torch.zeros(shape, dtype=torch.long))
        for name, shape in (("atom_center", (0,)), ("atom_scale", (0,)), ("x_shift", (dim,)), ("x_scale", (dim,))):
            self.register_buffer(name, torch.zeros(shape, dtype=torch.float64))
        self.x_scale.fill_(1.0)
        self.register_buffer("spec", self._spec())

    @property
    def n_features(self) -> int:
        return int(self.index.shape[0]) + int(self.atom_of.shape[0])

    def with_atoms(self, atoms: Sequence[Atom], atom_degree: int, shift: Tensor, scale: Tensor,
                   x: Tensor, max_features: int | None = None) -> "MonomialFeatures":
        """Add the terms (atom) x (monomial of degree 0..``atom_degree``), by monomial degree (at most
        ``max_features`` columns in all: whole stages only); centring and scale from the raw states ``x``."""
        K, Fm = len(atoms), int(self.index.shape[0])
        rows = _rows(self.dim, max(atom_degree, 0), True) if K else []
        q = atom_degree
        while K and q >= 0 and max_features is not None and Fm + K * math.comb(self.dim + q, q) > max_features:
            q -= 1
        if not K or q < 0:
            return self
        rows = rows[: math.comb(self.dim + q, q)]
        self.atoms, self.atom_degree = list(atoms), q
        self.atom_index = torch.tensor([r for r in rows for _ in range(K)], dtype=torch.long).reshape(
            len(rows) * K, max(atom_degree, 0))
        self.atom_of = torch.arange(K).repeat(len(rows))
        vals = torch.stack([a(x.double()) for a in atoms], -1)
        self.atom_center, self.atom_scale = vals.mean(0), vals.std(0).clamp_min(1e-300)
        self.x_shift = torch.as_tensor(shift, dtype=torch.float64).detach().cpu().clone()
        self.x_scale = torch.as_tensor(scale, dtype=torch.float64).detach().cpu().clone()
        self.spec = self._spec()
        return self

    def stages(self, max_columns: float | None = None) -> list["Stage"]:
        """The stages, in the order they are solved (:class:`Stage`): the monomials of degree <= 1, <= 2,
        ..., then for each atom degree ``q`` = 0, 1, ... the atoms x monomials of degree <= ``q`` beside the
        monomials of the highest degree that keeps the stage within ``max_columns`` (degree-adaptive: a
        stage the points cannot support beside all the monomials is solved beside fewer of them; a stage
        that fits with none is skipped). ``max_columns`` ``None``: no limit (every stage beside all the
        monomials)."""
        cap = math.inf if max_columns is None else max_columns
        out = [Stage(n_monomials(self.dim, p), p, -1, n_monomials(self.dim, p), n_monomials(self.dim, p))
               for p in range(1, self.degree + 1) if n_monomials(self.dim, p) <= cap]
        K, Fm = len(self.atoms), int(self.index.shape[0])
        for q in range(self.atom_degree + 1):
            n_atom = K * math.comb(self.dim + q, q)
            for p in range(self.degree, 0, -1):
                if n_monomials(self.dim, p) + n_atom <= cap:
                    out.append(Stage(n_monomials(self.dim, p) + n_atom, p, q, n_monomials(self.dim, p), Fm + n_atom))
                    break
        return out

    def leading(self, n: int) -> "MonomialFeatures":
        """A copy with only the first ``n`` columns (a network's head for a stage's solution)."""
        Fm = int(self.index.shape[0])
        out = MonomialFeatures(self.dim, 1)
        st = {k: v.clone() for k, v in self.state_dict().items()}
        st["index"], st["atom_index"] = st["index"][:n], st["atom_index"][: max(n - Fm, 0)]
        st["atom_of"] = st["atom_of"][: max(n - Fm, 0)]
        st["spec"] = torch.zeros(0, dtype=torch.uint8)
        out.load_state_dict(st)
        # the atom objects themselves (a user's feature need not be registered to be used in-process)
        out.degree, out.atom_degree, out.atoms = self.degree, self.atom_degree, list(self.atoms)
        out.spec = self.spec.clone()
        return out

    def _spec(self) -> Tensor:
        """The atoms and degrees as a buffer (JSON bytes: a tensor, so state dicts stay tensors)."""
        spec = {"degree": self.degree, "atom_degree": self.atom_degree,
                "atoms": [[a.feature.name, list(a.coords)] for a in self.atoms]}
        return torch.tensor(list(json.dumps(spec).encode()), dtype=torch.uint8)

    def _set_spec(self, spec: Tensor) -> None:
        state = json.loads(bytes(spec.cpu().tolist()).decode()) if spec.numel() else None
        if state is None:   # a library saved before atoms existed
            self.degree, self.atom_degree, self.atoms = int(self.index.shape[1]), -1, []
            return
        self.degree, self.atom_degree = int(state["degree"]), int(state["atom_degree"])
        atoms = []
        for name, coords in state["atoms"]:
            if name not in FEATURES:
                raise UserError(f"library feature {name!r} of a saved library is not registered; register it "
                                f"(sciml.conservation.FEATURES.register({name!r}, ...)) before loading")
            atoms.append(Atom(FEATURES.resolve(name), tuple(int(i) for i in coords)))
        self.atoms = atoms

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        # take the saved shapes (a head of any stage loads into any MonomialFeatures); a library saved
        # before atoms existed has neither atom buffers nor a spec: keep the empty ones
        for name, buf in self._buffers.items():
            key = prefix + name
            if key not in state_dict:
                state_dict[key] = buf if name != "spec" else buf.new_zeros(0)
            elif buf is not None and state_dict[key].shape != buf.shape:
                self._buffers[name] = torch.empty_like(state_dict[key], dtype=buf.dtype, device=buf.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._set_spec(self.spec)

    def jacobian(self, z: Tensor) -> Tensor:
        r"""Closed-form :math:`\partial\phi/\partial z` at points ``z`` ``(n, d) -> (n, F, d)``: a monomial's
        derivative in :math:`w_j` sums, over its factors equal to :math:`w_j`, the product of the others
        (prefix times suffix products: no division, safe at 0); then
        :math:`\partial/\partial z = (\partial/\partial w)\,T^\top`. Atom terms by the product rule, the
        atoms' own derivatives by forward mode."""
        T = self.transform.to(z.dtype)
        we = torch.cat([torch.ones_like(z[..., :1]), z @ T], -1)
        _, dmono = _monomial_jacobian(we, self.index)
        if not self.atom_of.shape[0]:
            return dmono[..., 1:] @ T.T
        m, dm = _monomial_jacobian(we, self.atom_index)
        x = z * self.x_scale.to(z.dtype) + self.x_shift.to(z.dtype)
        a = torch.stack([atom(x) for atom in self.atoms], -1)
        da = torch.func.vmap(torch.func.jacfwd(lambda x1: torch.stack([atom(x1) for atom in self.atoms], -1)))(x)
        da = da * self.x_scale.to(z.dtype)                                           # (n, K, d), in z
        sa = self.atom_scale.to(z.dtype)
        a, da = (a - self.atom_center.to(z.dtype)) / sa, da / sa[:, None]
        dterm = da[:, self.atom_of] * m[..., None] + a[:, self.atom_of, None] * (dm[..., 1:] @ T.T)
        return torch.cat([dmono[..., 1:] @ T.T, dterm], 1)

    def forward(self, z: Tensor) -> Tensor:
        w = z @ self.transform.to(z.dtype)
        we = torch.cat([torch.ones_like(w[..., :1]), w], -1)
        mono = we[..., self.index].prod(-1)
        if not self.atom_of.shape[0]:
            return mono
        x = z * self.x_scale.to(z.dtype) + self.x_shift.to(z.dtype)
        a = torch.stack([atom(x) for atom in self.atoms], -1)
        a = (a - self.atom_center.to(z.dtype)) / self.atom_scale.to(z.dtype)
        return torch.cat([mono, a[..., self.atom_of] * we[..., self.atom_index].prod(-1)], -1)


def monomial_factor_derivatives(we: Tensor, index: Tensor) -> list[Tensor]:
    """For products of the factors ``we[:, index]`` (``index`` ``(F, p)``), the derivative of each product in
    its ``l``-th factor, the product of the others: ``p`` tensors ``(n, F)`` (prefix times suffix products: no
    division, safe at 0; not stacked, which cost more than the products). Summing them into the entries
    ``index[:, l]`` gives the Jacobian (:func:`_monomial_jacobian`)."""
    p = index.shape[1]
    f = [torch.index_select(we, 1, index[:, k]) for k in range(p)]   # p x (n, F): the factors (index_select: 7x
                                                                      # faster than we[:, i] on CPU)
    pre = [torch.ones_like(f[0])]                                     # products of the factors before l
    for k in range(p - 1):
        pre.append(pre[-1] * f[k])
    out, suf = [None] * p, torch.ones_like(f[0])                      # and after it (a loop over p: cumprod
    for k in range(p - 1, -1, -1):                                    # and flips took 5x longer)
        out[k] = pre[k] * suf
        suf = suf * f[k]
    return out


def _monomial_jacobian(we: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Products of the factors ``we[:, index]`` ``(n, F)`` and their derivatives in each entry of ``we``
    ``(n, F, d + 1)`` (entry 0, the constant 1, included)."""
    n, F, p = we.shape[0], index.shape[0], index.shape[1]
    if p == 0:
        return we.new_ones(n, F), we.new_zeros(n, F, we.shape[1])
    f = we[:, index]                                                  # (n, F, p)
    ones = torch.ones_like(f[..., :1])
    pre = torch.cumprod(torch.cat([ones, f[..., :-1]], -1), -1)       # product of the factors before l
    suf = torch.flip(torch.cumprod(torch.flip(torch.cat([f[..., 1:], ones], -1), [-1]), -1), [-1])
    d = we.new_zeros(n, F, we.shape[1])
    d.scatter_add_(2, index.expand(n, F, p), pre * suf)
    return pre[..., -1] * f[..., -1], d


def build_library(dim: int, degree: int, transform: Tensor | None, x: Tensor, shift: Tensor, scale: Tensor,
                  features: Sequence[str | Feature] = (), atom_degree: int = 0,
                  max_features: int | None = None) -> MonomialFeatures:
    """The library: monomials of degree 1..``degree`` of ``w = zT``, then the well-conditioned atoms of
    ``features`` on the raw library points ``x`` times monomials of degree 0..``atom_degree`` (whole stages,
    at most ``max_features`` columns). The dropped atoms and why: the module's ``dropped`` (also logged at
    DEBUG: at N = 5 they are 90 lines, and at INFO they stood before a refused resume's one-line error)."""
    lib = MonomialFeatures(dim, degree, transform)
    lib.dropped = []
    if features and atom_degree >= 0:
        atoms, lib.dropped = select_atoms(features, x)
        for label, why in lib.dropped:
            log.debug("library: atom %s not used: %s", label, why)
        lib.with_atoms(atoms, atom_degree, shift, scale, x, max_features)
        if atoms and not lib.atoms:
            log.debug("library: no atom term fits under %s columns beside %d monomials", max_features,
                     lib.n_features)
    return lib


def whitening(z: Tensor, rcond: float = 1e-8) -> Tensor:
    r"""A matrix :math:`T` (``(d, d)``, float64) with :math:`\mathrm{cov}(zT) = I` on the well-determined
    directions (principal axes scaled by :math:`\lambda^{-1/2}`; directions with
    :math:`\lambda < ` ``rcond`` :math:`\lambda_{\max}` are kept unscaled)."""
    zc = z.double() - z.double().mean(0)
    lam, U = torch.linalg.eigh(zc.T @ zc / max(len(z) - 1, 1))
    scale = torch.where(lam > rcond * lam.max(), lam.clamp_min(1e-300).rsqrt(), torch.ones_like(lam))
    return (U * scale).cpu()


def feature_gradients(features: MonomialFeatures, z: Tensor, chunk_size: int = 2048) -> Tensor:
    """Per-point Jacobians :math:`\\partial\\phi/\\partial z` ``(n, F, d)``: closed form for the library
    (:meth:`MonomialFeatures.jacobian`), forward mode (vmapped) for any other module."""
    if isinstance(features, MonomialFeatures):
        return torch.cat([features.jacobian(z[s:s + chunk_size]) for s in range(0, len(z), chunk_size)])
    f = point_function(features, squeeze=False)
    return batch(jacobian(f, mode="fwd"), chunk_size=chunk_size)({}, z)


@dataclass(frozen=True)
class LibraryFit:
    """The best library candidate: ``H = coef . phi(z)``.

    Attributes:
        coef: ``(F,)`` over the whole library, 0 beyond the solution's stage (its first ``columns``), scaled so
            that the mean squared deflated gradient is 1.
        ratio: :math:`R` at ``coef`` (0 for an exact integral).
        next_ratio: the second-smallest eigenvalue (how isolated the solution is).
        rank: dimension of the library directions left after deflation.
        n_exact: how many of the smallest eigenvalues, in a row, are exact integrals at the stage.
        degree: the monomial degree of the solution's stage (the lowest with an exact integral, else the
            largest polynomial stage within the head cap).
        exact: the solution is conserved to the accuracy of the velocities (``library_fit``'s ``v_err``).
        ratio_err: :math:`R_{\rm err}` of the solution (0 without an error estimate).
        atom_degree: the stage's atom terms (atoms x monomials of degree <= this; -1: polynomials only).
        columns: the stage's leading block (0: all of ``coef``).
    """

    coef: Tensor
    ratio: float
    next_ratio: float
    rank: int
    n_exact: int = 0
    degree: int = 0
    exact: bool = False
    ratio_err: float = 0.0
    atom_degree: int = -1
    columns: int = 0

    @property
    def head_coef(self) -> Tensor:
        """The coefficients of the stage's columns (a network head: ``MonomialFeatures.leading``)."""
        return self.coef[: self.columns or len(self.coef)]


def _assemble(features: MonomialFeatures, z: Tensor, v: Tensor, v_err: Tensor | None, Q: Tensor,
              base: bool, chunk_size: int) -> dict[str, Any]:
    r"""Sums over chunks of points (float64): with ``base``, :math:`A`, :math:`G = \overline{JJ^\top}`,
    :math:`E` (module docstring); always :math:`M = \sum_j \overline{(Jq_j)(Jq_j)^\top}` for ``Q``'s columns.
    A chunk holds at most ~2^23 Jacobian entries (64 MB), whatever the library's size."""
    F, d, k = features.n_features, z.shape[-1], Q.shape[-1]
    chunk = max(16, min(chunk_size, 2**23 // max(F * d, 1)))
    out: dict[str, Any] = {"M": torch.zeros(F, F, dtype=torch.float64)}
    if base:
        out.update(A=torch.zeros(F, F, dtype=torch.float64), G=torch.zeros(F, F, dtype=torch.float64),
                   E=torch.zeros(F, F, dtype=torch.float64), n_err=0)
    if not base and not k:
        return out
    for s0 in range(0, len(z), chunk):
        sl = slice(s0, s0 + chunk)
        J = feature_gradients(features, z[sl].double(), chunk).double().cpu()
        if k:
            JQ = torch.einsum("mfd,mdk->mkf", J, Q[sl].double().cpu()).reshape(-1, F)
            out["M"] += JQ.T @ JQ
        if not base:
            continue
        vh = v[sl].double().cpu()
        vn = vh.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        a = torch.einsum("mfd,md->mf", J, vh / vn)
        out["A"] += a.T @ a
        Jr = J.transpose(1, 2).reshape(-1, F)
        out["G"] += Jr.T @ Jr
        if v_err is not None:
            eh = v_err[sl].double().cpu() / vn
            ok = torch.isfinite(eh).all(-1)
            ae = torch.einsum("mfd,md->mf", J[ok], eh[ok])
            out["E"] += ae.T @ ae
            out["n_err"] += int(ok.sum())
    return out


def library_fit(features: MonomialFeatures, z: Tensor, v: Tensor, Q: Tensor, *, v_err: Tensor | None = None,
                exact_factor: float = 4.0, rcond: float = 1e-10, null_tol: float = 1e-12,
                chunk_size: int = 2048, cache: dict | None = None, head_features: int | None = None,
                points_per_column: float = 5.0, check: Tensor | None = None,
                max_deflation: float | None = None, deflation_eps: float = 1e-6) -> LibraryFit:
    r"""Minimise :math:`R(c) = c^\top A c / c^\top B c` (module docstring) over the library's stages.

    Args:
        features: the library :math:`\phi` (its :meth:`~MonomialFeatures.stages`).
        z: points ``(M, d)``; v: velocities ``(M, d)`` (both standardised).
        Q: orthonormal bases of the earlier laws' gradient spans ``(M, d, k)`` (``k`` may be 0).
        v_err: estimated errors of ``v`` ``(M, d)`` (standardised; NaN rows are skipped),
            :func:`sciml.conservation.data.finite_difference_error`. An exact integral's residual is
            that error: :math:`\langle\nabla H, \hat v\rangle = \langle\nabla H, e/\|v\|\rangle`, so a
            solution is *exact* when :math:`R \le` ``exact_factor`` :math:`\times R_{\rm err}`, with
            :math:`R_{\rm err} = c^\top E c / c^\top B c`, :math:`E = \overline{(Je)(Je)^\top}/\|v\|^2`
            (or when :math:`R <` ``null_tol``).
        exact_factor: see ``v_err``.
        rcond: directions of :math:`B` below ``rcond`` times its largest eigenvalue are dropped.
        null_tol: eigenvalues below this count as exact whatever the error estimate (round-off).
        chunk_size: the most points per chunk (fewer for a large library).
        cache: a dict kept across the candidates of one discovery (same ``features``, ``z``, ``v``,
            ``v_err``): :math:`A`, :math:`G`, :math:`E` are assembled into it once.
        head_features: with no exact stage, the solution returned is that of the largest polynomial stage
            with at most this many columns (``None``: the largest polynomial stage).
        points_per_column: a stage is solved only with at least this many points per column (else a
            function fitted to the points' few constraints, one per point, scores as exact: 434 columns on
            432 points of a two-frequency oscillator did).
        check: a boolean mask of ``z``'s rows held out of the fit (whole trajectories): a solution is
            exact only if it is exact on them too (:math:`R \le` ``exact_factor`` :math:`\times R_{\rm err}`
            there), else it is returned as not exact. Without it, 2,000 columns on 10,000 points of the 5-particle Toda chain gave seven
            "exact" solutions with held-out losses 50-800x their training ones.
        max_deflation: an exact solution whose median deflation factor :math:`(\|(I - QQ^\top)\hat g\|^2 +
            \epsilon)^{-1}` over ``z`` exceeds this is nearly a function of the earlier laws, which the count
            refuses (its independence bound, :math:`10^{D_i}`); it is not exact, and the next stage is tried.
            On the 3-particle open Toda data a degree-4 solution conserved to 6e-7 along held-out
            trajectories, with median deflation 290, took a candidate's place this way.
        deflation_eps: :math:`\epsilon`.

    The stages are solved in turn (polynomials of degree 1, 2, ..., then with atoms) and the first exact one
    wins (a *pure* law such as P = sum p before mixtures of P and H); among several exact ones of that
    stage, the one whose gradient lies farthest outside the earlier span is returned.
    """
    fit_rows = slice(None) if check is None else ~check.to(z.device)
    A, B, G, E = _matrices(features, z[fit_rows], v[fit_rows], None if v_err is None else v_err[fit_rows],
                           Q[fit_rows], chunk_size, cache, "base")
    held = None  # the held-out rows' matrices, assembled only when a stage is exact on the fitted ones
    has_check = check is not None and bool(check.any())
    n_fit = len(z) if check is None else int((~check).sum())
    fallback, fit = None, None
    stages = features.stages(n_fit / points_per_column) or features.stages()[:1]
    for stage in stages:
        idx, n = stage.index(), stage.block
        A_s, B_s, G_s = (M[idx][:, idx] for M in (A, B, G))
        fit = _solve(A_s, B_s, G_s, None if E is None else E[idx][:, idx], rcond, null_tol, exact_factor,
                     stage.degree, stage.atom_degree)
        coef = fit.coef.new_zeros(len(A))
        coef[idx] = fit.coef
        fit = dataclasses.replace(fit, coef=coef, columns=n)
        if fit.exact and has_check:
            if held is None:
                rows = check.to(z.device)
                held = _matrices(features, z[rows], v[rows], None if v_err is None else v_err[rows], Q[rows],
                                 chunk_size, cache, "check")
            fit = _checked(fit, n, held, exact_factor, null_tol)
        if fit.exact and max_deflation is not None and Q.shape[-1] > 0 and \
                _median_deflation(features, fit.coef[:n], n, z, Q, deflation_eps, chunk_size) > max_deflation:
            fit = dataclasses.replace(fit, exact=False)
        if fit.exact:
            return fit
        if stage.atom_degree < 0 and (fallback is None or head_features is None or n <= head_features):
            fallback = fit
    return fallback if fallback is not None else fit


def _median_deflation(features: MonomialFeatures, coef: Tensor, n: int, z: Tensor, Q: Tensor, eps: float,
                      chunk_size: int) -> float:
    """Median over ``z`` of the deflation factor of the solution ``coef`` on the leading ``n`` columns."""
    head = features.leading(n)
    c = coef.to(z.device, torch.float64)
    out = []
    for s in range(0, len(z), max(1, chunk_size // 4)):
        sl = slice(s, s + max(1, chunk_size // 4))
        g = torch.einsum("mfd,f->md", head.jacobian(z[sl].double()), c)
        out.append(deflation_factor(g, Q[sl].double(), 1.0, eps))
    return float(torch.cat(out).median())


def _matrices(features: MonomialFeatures, z: Tensor, v: Tensor, v_err: Tensor | None, Q: Tensor, chunk_size: int,
              cache: dict | None, key: str) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    r""":math:`A`, :math:`B`, :math:`G`, :math:`E` on these points (module docstring); :math:`A, G, E`
    are kept in ``cache[key]`` across the candidates, :math:`M` (the earlier laws' span) is not."""
    base = cache.get(key) if cache is not None else None
    if base is None or base["F"] != features.n_features:
        base = _assemble(features, z, v, v_err, Q, True, chunk_size)
        base["F"] = features.n_features
        M = base.pop("M")
        n = len(z)
        base["A"], base["G"] = base["A"] / n, base["G"] / n
        base["E"] = base["E"] / base["n_err"] if base["n_err"] else None
        if cache is not None:
            cache[key] = base
    else:
        M = _assemble(features, z, v, v_err, Q, False, chunk_size)["M"]
    B = base["G"] - M / len(z) if Q.shape[-1] else base["G"]
    return base["A"], B, base["G"], base["E"]


def _checked(fit: LibraryFit, n: int, held: tuple, exact_factor: float, null_tol: float) -> LibraryFit:
    """``fit`` if its solution is exact on the held-out points, else ``fit`` marked not exact (it may
    still start a network). (Searching the stage's other exact solutions for one that passes was tried and
    dropped: a combination whose gradient nearly vanishes on the held-out points passes with a ratio of
    round-off, and FPUT alpha N = 5 took such a function, held-out loss 1.1, as exact.)"""
    if _exact_on(fit.coef, held, exact_factor, null_tol):
        return fit
    return dataclasses.replace(fit, exact=False)


def _exact_on(coef: Tensor, mats: tuple[Tensor, Tensor, Tensor, Tensor | None], exact_factor: float,
              null_tol: float) -> bool:
    """Whether the library function ``coef`` is an exact integral on the held-out points of ``mats``."""
    A, B, _, E = mats
    c = coef.to(A)
    den = float(c @ B @ c)
    if not den > 0:
        return False
    r = float(c @ A @ c) / den
    r_err = float(c @ E @ c) / den if E is not None else 0.0
    return r < null_tol or r <= exact_factor * r_err


def _solve(A: Tensor, B: Tensor, G: Tensor, E: Tensor | None, rcond: float, null_tol: float,
           exact_factor: float, degree: int, atom_degree: int = -1) -> LibraryFit:
    """The generalised eigenproblem on one leading block (float64, CPU)."""
    F = A.shape[0]
    s = torch.sqrt(torch.diagonal(B).clamp_min(1e-300))
    keep = s > 1e-12 * s.max()

    def scaled(M: Tensor) -> np.ndarray:  # diagonal scaling by B's (each column's deflated gradient RMS)
        return (M / s[:, None] / s[None])[keep][:, keep].numpy()

    An, Bn = scaled(A), scaled(B)
    lam, U = np.linalg.eigh(Bn)
    ok = lam > rcond * lam.max()
    W = U[:, ok] / np.sqrt(lam[ok])               # B-whitening of the well-determined directions
    C = W.T @ An @ W
    w, Y = scipy.linalg.eigh(C)
    y = Y[:, 0]
    if E is not None:   # the ratio each eigenvector would have from the velocity error alone
        En = scaled(E)
        w_err = np.einsum("fi,fg,gi->i", W @ Y, En, W @ Y)
        is_exact = (w <= exact_factor * w_err) | (w < null_tol)
    else:
        is_exact = w < null_tol
    # exact eigenvectors come first in w's order; count the leading run
    null = int(np.argmin(is_exact)) if not is_exact.all() else len(w)
    if null > 1:
        # several exact integrals (e.g. P and P^2, or H and P when the earlier laws span neither): take the
        # one whose gradient lies farthest outside the earlier span (least |grad|^2 per unit deflated
        # |grad|^2), since the pointwise loss divides by that distance
        Ys = Y[:, :null]
        _, u = np.linalg.eigh(Ys.T @ W.T @ scaled(G) @ W @ Ys)
        y = Ys @ u[:, 0]
    c = torch.zeros(F, dtype=torch.float64)
    c[keep] = torch.from_numpy(W @ y) / s[keep]
    ratio = float(max(y @ C @ y, 0.0))
    ratio_err = float(y @ (W.T @ En @ W) @ y) if E is not None else 0.0
    return LibraryFit(c, ratio, float(max(w[1], 0.0)) if len(w) > 1 else math.inf, int(ok.sum()), null, degree,
                      null > 0, ratio_err, atom_degree)
