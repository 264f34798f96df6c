"""The models an engine knows: bundled specs, user registrations and their runners."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

from .errors import ModelError, UnknownModelError
from .inference import Runner, make_runner
from .spec import ModelSpec

__all__ = ["ModelHandles", "ModelRegistry", "bundled_specs", "silero_spec"]

MODELS_DIR = Path(str(resources.files("deeptone_async") / "models"))


def silero_spec() -> ModelSpec:
    """The bundled Vad: Silero VAD v6 (MIT), rebuilt to run whole blocks per call.

    Raises:
        ModelError: the bundled folder is missing or its spec is bad.
    """
    return ModelSpec.from_folder(MODELS_DIR / "vad")


def bundled_specs() -> list[ModelSpec]:
    """Vad first, then every other model folder shipped in ``deeptone_async/models``."""
    specs = [silero_spec()]
    for folder in sorted(p for p in MODELS_DIR.iterdir() if (p / "spec.json").is_file() and p.name != "vad"):
        specs.append(ModelSpec.from_folder(folder))
    return specs


class ModelHandles:
    """``engine.models``: one attribute per model, named by its handle (``engine.models.Vad``)."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def __getattr__(self, name: str) -> ModelSpec:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._registry.spec(name)
        except UnknownModelError as exc:
            raise AttributeError(str(exc)) from None

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._registry.specs())

    def __dir__(self) -> list[str]:
        return [s.name for s in self._registry.specs()]

    def __repr__(self) -> str:
        return f"<models {', '.join(s.name for s in self._registry.specs())}>"


class ModelRegistry:
    """Specs by handle name and key, and one runner (ONNX session) per model.

    Runners are created once, under a lock, and shared by every stream of the engine.
    """

    def __init__(self, threads_per_model: int = 1) -> None:
        self._threads = threads_per_model
        self._specs: dict[str, ModelSpec] = {}
        self._runners: dict[str, Runner] = {}
        self._lock = threading.Lock()

    def add(self, spec: ModelSpec, *, load: bool = True) -> ModelSpec:
        """Register ``spec`` (and load its ONNX file now unless ``load`` is false).

        Raises:
            ModelError: the name or key is taken, or the ONNX file cannot be loaded.
        """
        with self._lock:
            for other in self._specs.values():
                if spec.name in (other.name, other.key) or spec.key in (other.name, other.key):
                    raise ModelError(f"a model named {other.name!r} (key {other.key!r}) is already registered")
            if load:
                self._runners[spec.key] = make_runner(spec, self._threads)
            self._specs[spec.key] = spec
        return spec

    def specs(self) -> list[ModelSpec]:
        return list(self._specs.values())

    def spec(self, name: str | ModelSpec) -> ModelSpec:
        """Find a model by spec, handle name (``"Vad"``) or key (``"vad"``), case-insensitively.

        Raises:
            UnknownModelError: no such model is registered.
        """
        if isinstance(name, ModelSpec):
            key = name.key
        elif isinstance(name, str):
            key = name
        else:
            raise UnknownModelError(f"a model is named by a handle or a string, got {type(name).__name__}")
        want = key.lower()
        for spec in self._specs.values():
            if want in (spec.key.lower(), spec.name.lower()):
                if isinstance(name, ModelSpec) and name != spec:
                    break
                return spec
        available = ", ".join(s.name for s in self._specs.values())
        raise UnknownModelError(f"unknown model {key!r}; available models: {available}")

    def resolve(self, models: Sequence[str | ModelSpec] | str | ModelSpec | None) -> list[ModelSpec]:
        """The specs for a ``models`` argument (``None``: every model), without duplicates.

        Raises:
            UnknownModelError: a name that is not registered, or an empty list.
        """
        if models is None:
            return self.specs()
        if isinstance(models, (str, ModelSpec)):
            models = [models]
        out: list[ModelSpec] = []
        for m in models:
            spec = self.spec(m)
            if spec not in out:
                out.append(spec)
        if not out:
            raise UnknownModelError("models must name at least one model")
        return out

    def runner(self, spec: ModelSpec) -> Runner:
        """The shared runner of ``spec``, loading its ONNX file on first use."""
        with self._lock:
            runner = self._runners.get(spec.key)
            if runner is None:
                runner = self._runners[spec.key] = make_runner(spec, self._threads)
            return runner
