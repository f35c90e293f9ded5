r"""Transfer strategies: how a pre-trained MLP is re-parametrised for a new family member.

Each strategy is a small frozen object with ``parametrise(module, params) -> Parametrisation``
(:class:`sciml.pinn.solver.Parametrisation`): the trainable tensors, the frozen ones, and the pure
function that builds the MLP's parameter dict from them. The trainer and the forward Laplacian see
an ordinary MLP parameter dict, so every strategy trains with the same code.

=====================  =========================================================================
:class:`SVDTransfer`   SVD-PINN (the paper): :math:`W_1 = U\,\mathrm{diag}(s)\,V^\top` for the square
                       hidden-to-hidden matrix, U and V frozen, ``s >= 0`` trained by plain SGD,
                       every other weight and bias trained by Adam. Options: ``layers="all_hidden"``
                       (factor every weight feeding a hidden layer), truncated ``rank``,
                       ``train_rest=False`` (singular values only, P^2INN-style: a different method).
:class:`FullFineTune`  every parameter trained from the pre-trained values.
:class:`LastLayer`     only the output layer (the "Galerkin coefficients") trained.
:class:`FrozenHidden`  the hidden-to-hidden matrices frozen, the rest trained (the paper's
                       "fix the hidden layer, eta = 0" baseline).
:class:`Scratch`       a fresh random network, every parameter trained.
=====================  =========================================================================

They are registered by name in :data:`TRANSFER_STRATEGIES` (the choices of ``transfer.method``):
``svd``, ``sigma_only`` (:class:`SVDTransfer` without the other weights), ``full``, ``last_layer``,
``frozen_hidden``, ``scratch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

from sciml.nn.svd import svd_factor, svd_weight
from sciml.pinn.solver import Parametrisation, identity_parametrisation
from sciml.registry import Registry

__all__ = ["TRANSFER_STRATEGIES", "TransferStrategy", "SVDTransfer", "FullFineTune", "LastLayer", "FrozenHidden",
           "Scratch", "linear_weights"]


def linear_weights(module: nn.Module) -> list[str]:
    """Names of the ``nn.Linear`` weights of ``module``, input to output."""
    return [f"{n}.weight" for n, m in module.named_modules() if isinstance(m, nn.Linear)]


def _hidden_square(module: nn.Module, params: Mapping[str, Tensor]) -> list[str]:
    ws = linear_weights(module)
    return [w for w in ws[1:-1] if params[w].shape[0] == params[w].shape[1]]


def _split(params: Mapping[str, Tensor], trainable: set[str]) -> tuple[dict, dict]:
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in params.items() if k in trainable}
    const = {k: v.detach().clone() for k, v in params.items() if k not in trainable}
    return theta, const


def _merge(theta, const):
    return {**const, **theta}


class TransferStrategy:
    """Base: ``parametrise(module, params)`` returns the :class:`Parametrisation` to train."""

    label = "strategy"

    def parametrise(self, module: nn.Module, params: Mapping[str, Tensor]) -> Parametrisation:  # pragma: no cover
        raise NotImplementedError


def _svd_build(names: tuple[str, ...], with_residual: tuple[bool, ...]):
    def build(theta, const):
        p = {k: v for k, v in const.items() if not k.endswith((".U", ".V", ".R"))}
        p.update({k: v for k, v in theta.items() if not k.endswith(".s")})
        for w, r in zip(names, with_residual):
            p[w] = svd_weight(const[w + ".U"], theta[w + ".s"], const[w + ".V"], const[w + ".R"] if r else None)
        return p

    return build


@dataclass(frozen=True)
class SVDTransfer(TransferStrategy):
    """SVD-PINN: factor chosen weights as :math:`U\\,\\mathrm{diag}(s)\\,V^\\top`, freeze U and V.

    Attributes:
        layers: ``"hidden_square"`` (the paper: the square hidden-to-hidden matrices) or
            ``"all_hidden"`` (every weight that feeds a hidden layer, the input layer included).
        rank: trainable singular values per factored matrix (``None``/0: all); the tail stays frozen.
        train_rest: train every other weight and bias too (the paper); ``False`` trains the singular
            values only (P^2INN-style, a different method).
    """

    layers: str = "hidden_square"
    rank: int | None = None
    train_rest: bool = True

    @property
    def label(self) -> str:  # type: ignore[override]
        base = "svd" if self.train_rest else "sigma_only"
        extra = "" if self.layers == "hidden_square" else f"[{self.layers}]"
        return base + extra + (f"[r={self.rank}]" if self.rank else "")

    def parametrise(self, module, params) -> Parametrisation:
        if self.layers == "hidden_square":
            names = _hidden_square(module, params)
            if not names:
                raise ValueError("SVDTransfer(layers='hidden_square') needs a square hidden-to-hidden weight "
                                 "(at least two hidden layers of equal width); use layers='all_hidden'")
        elif self.layers == "all_hidden":
            names = linear_weights(module)[:-1]
        else:
            raise ValueError(f"layers must be 'hidden_square' or 'all_hidden', got {self.layers!r}")
        rest = {k for k in params if k not in names} if self.train_rest else set()
        theta, const = _split({k: v for k, v in params.items() if k not in names}, rest)
        with_res = []
        for w in names:
            f = svd_factor(params[w], self.rank)
            const[w + ".U"], const[w + ".V"] = f.U, f.V
            if f.residual is not None:
                const[w + ".R"] = f.residual
            with_res.append(f.residual is not None)
            theta[w + ".s"] = f.s.clone().requires_grad_(True)
        s_keys = frozenset(w + ".s" for w in names)
        return Parametrisation(theta, const, _svd_build(tuple(names), tuple(with_res)), s_keys=s_keys,
                               nonneg_keys=s_keys, label=self.label)


@dataclass(frozen=True)
class FullFineTune(TransferStrategy):
    """Every parameter trainable, starting from the pre-trained values."""

    label = "full"

    def parametrise(self, module, params) -> Parametrisation:
        par = identity_parametrisation(module, params)
        par.label = self.label
        return par


@dataclass(frozen=True)
class LastLayer(TransferStrategy):
    """Only the output layer's weight and bias trainable."""

    label = "last_layer"

    def parametrise(self, module, params) -> Parametrisation:
        last = linear_weights(module)[-1]
        keys = {last, last[: -len("weight")] + "bias"}
        theta, const = _split(params, keys)
        return Parametrisation(theta, const, _merge, label=self.label)


@dataclass(frozen=True)
class FrozenHidden(TransferStrategy):
    """The square hidden-to-hidden weights frozen, everything else trainable (the paper's eta = 0)."""

    label = "frozen_hidden"

    def parametrise(self, module, params) -> Parametrisation:
        frozen = set(_hidden_square(module, params))
        theta, const = _split(params, {k for k in params if k not in frozen})
        return Parametrisation(theta, const, _merge, label=self.label)


@dataclass(frozen=True)
class Scratch(TransferStrategy):
    """A fresh random initialisation of the same architecture (seeded), every parameter trainable."""

    seed: int = 0
    label = "scratch"

    def parametrise(self, module, params) -> Parametrisation:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)
        fresh = {}
        for name, m in module.named_modules():
            if isinstance(m, nn.Linear):
                w = torch.empty_like(params[f"{name}.weight"])
                nn.init.xavier_normal_(w)
                fresh[f"{name}.weight"] = w
                if m.bias is not None:
                    fresh[f"{name}.bias"] = torch.zeros_like(params[f"{name}.bias"])
        torch.random.set_rng_state(gen_state)
        par = identity_parametrisation(module, fresh)
        par.label = self.label
        return par


#: transfer strategies by name; factories take ``layers``, ``rank`` (0: full) and ``seed`` (``scratch``)
TRANSFER_STRATEGIES: Registry[TransferStrategy] = Registry("transfer method", TransferStrategy)


@TRANSFER_STRATEGIES.register("svd")
def _svd(layers: str = "hidden_square", rank: int = 0) -> SVDTransfer:
    """SVD-PINN (the paper): singular values by SGD, every other weight and bias by Adam."""
    return SVDTransfer(layers, rank or None, True)


@TRANSFER_STRATEGIES.register("sigma_only")
def _sigma_only(layers: str = "hidden_square", rank: int = 0) -> SVDTransfer:
    """The singular values only (P^2INN-style, a different method)."""
    return SVDTransfer(layers, rank or None, False)


TRANSFER_STRATEGIES.register("full", FullFineTune)
TRANSFER_STRATEGIES.register("last_layer", LastLayer)
TRANSFER_STRATEGIES.register("frozen_hidden", FrozenHidden)
TRANSFER_STRATEGIES.register("scratch", Scratch)
