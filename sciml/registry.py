"""Registries: one per kind of strategy, so a name in a config or on the command line and an object
built in Python are interchangeable.

A registry maps names to factories (usually the strategy's class)::

    LAPLACIANS = Registry("laplacian", AbstractLaplacian)

    @LAPLACIANS.register("forward")
    class ForwardLaplacian(AbstractLaplacian): ...

    LAPLACIANS.resolve("forward")          # -> ForwardLaplacian()
    LAPLACIANS.resolve("sdgd", probes=16)  # -> SDGD(num_dims=16)
    LAPLACIANS.resolve(SDGD(8))            # an object passes through unchanged
    LAPLACIANS.names()                     # the choices a config key or a CLI flag offers

This module imports nothing of sciml, so every layer (the autodiff core included) may use it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, Iterator, TypeVar

__all__ = ["Registry", "UnknownChoice"]

T = TypeVar("T")


class UnknownChoice(ValueError):
    """A name that is not registered; the message lists the names that are."""


class Registry(Generic[T]):
    """Names -> factories of one kind of strategy.

    Args:
        kind: what the strategies are, for messages (``"laplacian"``, ``"count rule"``).
        base: the strategies' common type; :meth:`resolve` passes instances of it through.
    """

    def __init__(self, kind: str, base: type | tuple[type, ...] | None = None):
        self.kind = kind
        self.base = base
        self._factories: dict[str, Callable[..., T]] = {}
        self._docs: dict[str, str] = {}

    def register(self, name: str, factory: Callable[..., T] | None = None, *, doc: str = ""):
        """Register ``factory`` under ``name``; usable as a decorator (``@REG.register("name")``)."""

        def add(f: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = f
            self._docs[name] = doc or (inspect.getdoc(f) or "").split("\n")[0]
            return f

        return add(factory) if factory is not None else add

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order (the choices of a config key or CLI flag)."""
        return tuple(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __getitem__(self, name: str) -> Callable[..., T]:
        try:
            return self._factories[name]
        except KeyError:
            raise UnknownChoice(f"unknown {self.kind} {name!r}; choose one of {list(self._factories)}") from None

    def doc(self, name: str) -> str:
        return self._docs.get(name, "")

    def resolve(self, choice: str | T, /, **kwargs: Any) -> T:
        """An object for ``choice``: a registered name is built with the keyword arguments its factory
        accepts (others are ignored, so one call site can pass every option); an object is returned as is.
        """
        if not isinstance(choice, str):
            if self.base is not None and not isinstance(choice, self.base):
                raise TypeError(f"expected a {self.kind} name or object, got {type(choice).__name__}")
            return choice
        factory = self[choice]
        try:
            sig = inspect.signature(factory)
        except (TypeError, ValueError):
            return factory(**kwargs)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return factory(**kwargs)
        return factory(**{k: v for k, v in kwargs.items() if k in sig.parameters})
