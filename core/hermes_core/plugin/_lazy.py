"""Lazy exports: a package names what it offers, and each name is imported on first use.

One mechanism for the core's public packages and for plugins: registering a plugin, or running
``hermes --help``, must not import pydantic, asyncio machinery or a cloud SDK.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__``/``__dir__`` that import each exported name on first access.

    Args:
        package: the importing module's ``__name__``.
        exports: ``{name: module}``; a module starting with ``.`` is relative to ``package``.
            ``"module:attr"`` exports ``attr`` of ``module`` under ``name``.
        namespace: the module's ``globals()``; a resolved name is cached there, so the second
            access costs nothing.

    Usage (in a package's ``__init__.py``)::

        __getattr__, __dir__ = lazy_exports(__name__, {"Runner": ".rollout"}, globals())
    """

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = target.partition(":")
        value = getattr(importlib.import_module(module, package), attr or name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
