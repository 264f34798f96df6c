"""Names a package imports at their first use (PEP 562 module ``__getattr__``).

``import deeptone_async`` and the command line's ``--help`` stay fast because the engine,
the sources and the server (with numpy, ONNX Runtime, soundfile, Starlette behind them)
are imported only when one of their names is first read.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str,
    table: Mapping[str, str],
    exported: Collection[str],
    extra: tuple[str, Collection[str]] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__``.
        table: name -> the relative module that defines it (``{"Deeptone": ".engine"}``).
        exported: the package's ``__all__``.
        extra: ``(extra name, top-level modules it installs)``: a missing one of those
            modules becomes an ImportError that says ``pip install 'deeptone-async[extra]'``.

    The value is cached in the package, so each name is imported once.
    """
    module = sys.modules[package]

    def __getattr__(name: str) -> Any:
        where = table.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            value = getattr(importlib.import_module(where, package), name)
        except ModuleNotFoundError as exc:
            if extra is not None and exc.name is not None and exc.name.split(".")[0] in extra[1]:
                raise ImportError(f"{package} needs {exc.name}: pip install 'deeptone-async[{extra[0]}]'") from exc
            raise
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(module)) | set(exported))

    return __getattr__, __dir__
