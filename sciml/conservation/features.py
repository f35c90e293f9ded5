r"""Non-polynomial atoms for the library start: a user-extensible feature dictionary.

The polynomial start (:mod:`sciml.conservation.library`) solves a generalised eigenproblem over a
library of functions :math:`\phi(z)`; nothing in it needs the functions to be monomials. This module adds
*atoms* :math:`a(x)` of the **raw** state (a logarithm or a cosine of a standardised coordinate is not the
one of the raw coordinate), and the library then holds the products :math:`a(x)\,m(z)` of each atom with
the monomials :math:`m` of low degree (0, 1, ...) beside the pure monomials.

A :class:`Feature` is a family of atoms: an elementwise function of one coordinate (``arity`` 1: one atom
per coordinate, :math:`\log|x_i|`) or of two (``arity`` 2: one per pair, :math:`1/|x_i - x_j|`, or per
ordered pair, :math:`e^{x_i - x_j}`). Built-ins, by name in :data:`FEATURES`:

==============  ============================  =================================================
name            atom                          used only where (:func:`select_atoms`)
==============  ============================  =================================================
``log_abs``     :math:`\log|x_i|`             :math:`x_i` keeps one sign, away from 0
``inv_abs``     :math:`1/|x_i|`               the same
``inv_dist``    :math:`1/|x_i - x_j|`, i<j    :math:`x_i - x_j` keeps one sign (no collision)
``exp``         :math:`e^{x_i}`               the gradient's range on the data is moderate
``exp_neg``     :math:`e^{-x_i}`              the same
``exp_diff``    :math:`e^{x_i - x_j}`, i≠j    the same
``cos``         :math:`\cos x_i`              always (bounded)
``sin``         :math:`\sin x_i`              always
==============  ============================  =================================================

A user adds a family by object (``build_library(..., features=[Feature("inv_sq", lambda a, b: (a - b)**-2,
arity=2, away_from_zero=True)])``) or by name (``FEATURES.register("inv_sq", lambda: Feature(...))``, then
``library_features = [..., "inv_sq"]`` in a config; a saved run with it reloads only where the name is
registered). ``fn`` must be elementwise and differentiable by autograd (it is vmapped and
forward-differentiated with the rest of the library).

An atom is *well-conditioned on the data* when its values and derivative are finite at every point, it
is not constant there, its argument keeps one sign away from 0 where the family needs that
(``away_from_zero``: :math:`\min|u| \ge 10^{-3}\max|u|`), and its derivative's largest value is at most
``max_range`` (1e6) times its 90th percentile (:math:`e^{x}` fails it when the top tenth of the data
spans more than 14 in :math:`x`). Any other atom's column would be ruled by a few points of the data
(a blow-up); it is dropped and the reason recorded. A *decaying* atom passes: open Toda's
:math:`e^{q_i - q_{i+1}}` is O(1) while two particles interact and ~0 once they have scattered apart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..registry import Registry

__all__ = ["Feature", "Atom", "FEATURES", "DEFAULT_FEATURES", "resolve_features", "select_atoms"]


@dataclass(frozen=True)
class Feature:
    """A family of atoms: ``fn`` applied elementwise to one coordinate (``arity`` 1) or a pair (``arity`` 2).

    Attributes:
        name: the family's name (also how a saved library refers to it: register it in :data:`FEATURES`).
        fn: elementwise ``fn(x_i)`` or ``fn(x_i, x_j)`` of tensors of equal shape.
        arity: 1 or 2.
        ordered: arity 2: one atom per ordered pair ``(i, j)``, ``i != j`` (else ``i < j``).
        away_from_zero: the argument (``x_i``, or ``x_i - x_j``) must keep one sign away from 0.
    """

    name: str
    fn: Callable[..., Tensor]
    arity: int = 1
    ordered: bool = False
    away_from_zero: bool = False

    def coordinates(self, dim: int) -> list[tuple[int, ...]]:
        """The coordinate tuples of this family's atoms in ``dim`` dimensions."""
        if self.arity == 1:
            return [(i,) for i in range(dim)]
        if self.arity == 2:
            pairs = itertools.permutations(range(dim), 2) if self.ordered else itertools.combinations(range(dim), 2)
            return list(pairs)
        raise ValueError(f"feature {self.name!r}: arity must be 1 or 2, got {self.arity}")


@dataclass(frozen=True)
class Atom:
    """One atom: a family applied to the coordinates ``coords`` of the raw state."""

    feature: Feature
    coords: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.feature.name}({', '.join(f'x{i}' for i in self.coords)})"

    def __call__(self, x: Tensor) -> Tensor:
        """Values at states ``x`` ``(..., d)`` -> ``(...)`` (vmap-friendly: indexing and ``fn`` only)."""
        return self.feature.fn(*[x[..., i] for i in self.coords])

    def argument(self, x: Tensor) -> Tensor:
        """The quantity that must stay away from 0 (``x_i`` or ``x_i - x_j``)."""
        return x[..., self.coords[0]] if len(self.coords) == 1 else x[..., self.coords[0]] - x[..., self.coords[1]]


FEATURES: Registry[Feature] = Registry("library feature", Feature)

_BUILTIN = [
    ("log_abs", "log|x_i|", dict(fn=lambda a: torch.log(torch.abs(a)), away_from_zero=True)),
    ("inv_abs", "1/|x_i|", dict(fn=lambda a: 1.0 / torch.abs(a), away_from_zero=True)),
    ("inv_dist", "1/|x_i - x_j| (pairs i < j)", dict(fn=lambda a, b: 1.0 / torch.abs(a - b), arity=2,
                                                     away_from_zero=True)),
    ("exp", "exp(x_i)", dict(fn=torch.exp)),
    ("exp_neg", "exp(-x_i)", dict(fn=lambda a: torch.exp(-a))),
    ("exp_diff", "exp(x_i - x_j) (ordered pairs)", dict(fn=lambda a, b: torch.exp(a - b), arity=2, ordered=True)),
    ("cos", "cos(x_i)", dict(fn=torch.cos)),
    ("sin", "sin(x_i)", dict(fn=torch.sin)),
]
for _name, _doc, _kw in _BUILTIN:
    FEATURES.register(_name, (lambda n=_name, kw=_kw: Feature(n, **kw)), doc=_doc)

#: the library's default families (``DiscoveryConfig.library_features``)
DEFAULT_FEATURES: tuple[str, ...] = tuple(n for n, _, _ in _BUILTIN)


def resolve_features(features: Sequence[str | Feature]) -> list[Feature]:
    """Families from names (:data:`FEATURES`) or objects, in order, each once."""
    out: list[Feature] = []
    for f in features:
        feat = FEATURES.resolve(f)
        if feat.name not in [g.name for g in out]:
            out.append(feat)
    return out


def _why_dropped(atom: Atom, x: Tensor, max_range: float) -> str | None:
    """Why ``atom`` is not well-conditioned on the states ``x`` (``None``: it is)."""
    if atom.feature.away_from_zero:
        u = atom.argument(x)
        if not (bool((u > 0).all()) or bool((u < 0).all())):
            return "its argument changes sign or reaches 0 on the data"
        if float(u.abs().min()) < 1e-3 * float(u.abs().max()):
            return f"its argument comes within {float(u.abs().min()):.1e} of 0 (< 1e-3 of its largest size)"
    xs = x[:, list(atom.coords)].clone().requires_grad_(True)
    a = atom.feature.fn(*xs.unbind(-1))
    (g,) = torch.autograd.grad(a.sum(), xs)
    a, g = a.detach(), g.detach().abs().amax(-1)
    if not (torch.isfinite(a).all() and torch.isfinite(g).all()):
        return "not finite on the data"
    if float(a.std()) <= 1e-12 * max(float(a.abs().max()), 1e-300):
        return "constant on the data"
    ref = float(torch.quantile(g, 0.9))
    if ref <= 0 or float(g.max()) > max_range * ref:
        ratio = float(g.max()) / max(ref, 1e-300)
        return f"its derivative's largest value is {ratio:.1e} times its 90th percentile (> {max_range:.0e})"
    return None


def select_atoms(features: Sequence[str | Feature], x: Tensor, max_range: float = 1e6
                 ) -> tuple[list[Atom], list[tuple[str, str]]]:
    """The atoms of ``features`` that are well-conditioned on the raw states ``x`` ``(n, d)`` (module
    docstring), and ``(label, reason)`` of each dropped one."""
    x = x.detach().double()
    kept, dropped = [], []
    for feat in resolve_features(features):
        for coords in feat.coordinates(x.shape[-1]):
            atom = Atom(feat, tuple(coords))
            why = _why_dropped(atom, x, max_range)
            if why is None:
                kept.append(atom)
            else:
                dropped.append((atom.label, why))
    return kept, dropped
