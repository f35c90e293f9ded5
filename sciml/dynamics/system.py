r"""A dynamical system as data: a vector field, its known invariants and where to start trajectories.

State convention: ``x = (q_1..q_N, p_1..p_N)`` of dimension ``d = 2N`` for Hamiltonian systems (the
``"qp"`` layout). Every callable here acts on one state ``x`` of shape ``(d,)`` and is written with
ellipsis indexing, so it also broadcasts over leading batch axes; :func:`torch.func.vmap` lifts it
when per-point autodiff is needed (gradients of invariants in the checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import Tensor

__all__ = ["DynamicalSystem", "InitialRegion", "RegionError"]

PointMap = Callable[[Tensor], Tensor]


class RegionError(RuntimeError):
    """The initial-state region almost never yields a state in the energy window / admissible set."""


@dataclass(frozen=True)
class InitialRegion:
    r"""Where initial conditions are drawn: ``x0 = centre + half_width * U(-1, 1)^d`` coordinate-wise.

    Args:
        centre: tensor-like of length ``d`` (e.g. equally spaced lattice positions).
        half_width: per-coordinate half widths (length ``d``) or one number.
        description: one line for the docs and the HDF5 attributes.
    """

    centre: tuple[float, ...]
    half_width: tuple[float, ...]
    description: str = ""

    def sample(self, n: int, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float64) -> Tensor:
        """``n`` initial states, shape ``(n, d)``, drawn with ``generator``."""
        c = torch.tensor(self.centre, dtype=dtype)
        w = torch.tensor(self.half_width, dtype=dtype).expand_as(c)
        u = torch.rand((n, c.numel()), generator=generator, dtype=dtype)
        return c + w * (2 * u - 1)


@dataclass(frozen=True)
class DynamicalSystem:
    r"""An autonomous ODE :math:`\dot x = f(x)` with what is known about its first integrals.

    Args:
        name: catalogue name (e.g. ``"toda-open"``).
        dim: state dimension ``d``.
        vector_field: ``f(x)``, shape ``(d,) -> (d,)`` (broadcasts over leading axes).
        region: initial-condition region.
        invariants: known first integrals ``I(x) -> scalar`` by name (used only for checking).
        n_dof: ``N`` for a Hamiltonian system in the ``qp`` layout, else ``None``.
        hamiltonian: ``H(x)`` used for the energy-drift report (``None``: not Hamiltonian).
        dT_dp, dV_dq: for separable ``H = T(p) + V(q)``: ``p -> dT/dp`` and ``q -> dV/dq``; when both
            are given the symplectic integrators can be used.
        expected: number of functionally independent integrals theory predicts (all of them).
        expected_involution: number in involution (at most ``N``).
        params: physical parameters (stored with the trajectories).
        notes: one line on what the count means for this system.
        max_energy: reject initial states above this energy (``None``: keep all).
        min_energy: reject initial states below this energy (``None``: keep all); with ``max_energy`` an
            energy shell, e.g. where a chain is chaotic.
        admissible: ``x -> bool`` mask of allowed initial states (e.g. inside a potential well's bounded
            component), applied with the energy window; ``None``: all.
        expected_is_lower_bound: theory guarantees only "at least ``expected``" integrals.
    """

    name: str
    dim: int
    vector_field: PointMap
    region: InitialRegion
    invariants: Mapping[str, PointMap] = field(default_factory=dict)
    n_dof: int | None = None
    hamiltonian: PointMap | None = None
    dT_dp: PointMap | None = None
    dV_dq: PointMap | None = None
    expected: int | None = None
    expected_involution: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""
    max_energy: float | None = None
    expected_is_lower_bound: bool = False
    min_energy: float | None = None
    admissible: Callable[[Tensor], Tensor] | None = None

    #: rounds of ``max(2 * missing, 256)`` draws before the draw size follows the acceptance rate
    FIXED_ROUNDS: ClassVar[int] = 2000
    #: total draws after which a region is refused (:class:`RegionError`)
    MAX_DRAWS: ClassVar[int] = 50_000_000

    def sample_initial(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` initial states from :attr:`region`, keeping those with ``min_energy <= H <= max_energy``
        (e.g. below an escape barrier, or on a chaotic energy shell) and :attr:`admissible`, when set."""
        window = self.hamiltonian is not None and (self.max_energy is not None or self.min_energy is not None)
        if not window and self.admissible is None:
            return self.region.sample(n, generator)
        kept: list[Tensor] = []
        have, tries, drawn = 0, 0, 0
        while have < n:
            size = max(2 * (n - have), 256)
            if tries >= self.FIXED_ROUNDS:
                # a rare region: size the draws by the acceptance seen so far (the first rounds are kept as
                # they were, so every region that fills within them draws the same states as before)
                rate = have / drawn
                if rate == 0 or drawn + (n - have) / rate > self.MAX_DRAWS:
                    what = [f"H in [{self.min_energy}, {self.max_energy}]"] if window else []
                    what += ["admissible"] if self.admissible is not None else []
                    raise RegionError(
                        f"{self.name}: the region rarely gives states that are {' and '.join(what)} ({have} of {n} "
                        f"after {drawn} draws, acceptance {rate:.2g}; more than {self.MAX_DRAWS:.0e} draws would "
                        "be needed); widen the window or the region, or ask for fewer trajectories")
                size = min(math.ceil(1.5 * (n - have) / rate), 1 << 18)
            x = self.region.sample(size, generator)
            ok = torch.ones(x.shape[0], dtype=torch.bool)
            if window:
                E = self.hamiltonian(x)
                if self.max_energy is not None:
                    ok &= E <= self.max_energy
                if self.min_energy is not None:
                    ok &= E >= self.min_energy
            if self.admissible is not None:
                ok &= self.admissible(x)
            kept.append(x[ok])
            have += int(ok.sum())
            drawn += x.shape[0]
            tries += 1
        return torch.cat(kept)[:n]

    @property
    def separable(self) -> bool:
        """True when ``H = T(p) + V(q)`` is available split (symplectic integration possible)."""
        return self.dT_dp is not None and self.dV_dq is not None and self.n_dof is not None

    def invariant_values(self, X: Tensor) -> Tensor:
        """Known invariants on states ``X`` of shape ``(..., d)`` -> ``(..., n_invariants)``."""
        if not self.invariants:
            return X.new_zeros(X.shape[:-1] + (0,))
        return torch.stack([f(X) for f in self.invariants.values()], dim=-1)
