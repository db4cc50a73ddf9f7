"""What the instruction mixins (``ops_*.py``, ``observe.py``) use of the :class:`~vtpu.Client`
they are mixed into, declared once for readers and type checkers. The client defines each of
these itself, so at run time its own methods are the ones called."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["ClientHost"]


class ClientHost:
    """The base of every mixin of :class:`~vtpu.Client`."""

    #: Default seconds per reply.
    timeout: float

    def request(
        self, op: str, params: dict[str, Any] | None = None, bodies: Iterable[Any] = (), *, timeout: float | None = None
    ) -> tuple[dict[str, Any], list[Any]]:
        raise NotImplementedError

    def compute(
        self, op: str, params: dict[str, Any] | None = None, tensors: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        raise NotImplementedError

    def _bell(self, call: Any, timeout: float | None = None) -> Any:
        raise NotImplementedError

    def cput_batch(self, coords: Any, values: Any, *, kind: str | None = None, dtype: str | None = None, timeout: float | None = None) -> int:
        raise NotImplementedError

    def cdel_batch(self, coords: Any, *, timeout: float | None = None) -> int:
        raise NotImplementedError
