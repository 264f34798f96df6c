"""The public surface stays what ``__all__`` says."""

import deeptone_async
import deeptone_async.sinks
import deeptone_async.sources


def test_all_names_exist_and_are_exported() -> None:
    for module in (deeptone_async, deeptone_async.sinks, deeptone_async.sources):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name} missing"
        public = {n for n, v in vars(module).items() if not n.startswith("_") and not isinstance(v, type(module))}
        assert public <= set(module.__all__) | {"annotations"}, public - set(module.__all__)


def test_every_error_is_a_deeptone_error() -> None:
    errors = [getattr(deeptone_async, n) for n in deeptone_async.__all__ if n.endswith("Error")]
    assert len(errors) >= 8
    for cls in errors:
        assert issubclass(cls, deeptone_async.DeeptoneError)
