"""Each package's ``__all__`` is its public surface, pinned (httpx's test_exported_members).

For every package of damfleet (``damfleet``, ``damfleet.client``, ``damfleet.storage``,
``damfleet.delivery``, ...): every name in ``__all__`` exists, and every public name at
package level is either in ``__all__`` or imported from outside the package (``typer``,
``Any``, ``TYPE_CHECKING``). A helper that leaks into a package's namespace, or an export that was renamed
away, fails here instead of in a user's import.
"""

from __future__ import annotations
import __future__

import importlib
import pkgutil
import types
import typing

import pytest

import damfleet

PACKAGES = sorted(
    name for _, name, is_pkg in pkgutil.walk_packages(damfleet.__path__, "damfleet.")
    if is_pkg and not name.startswith("damfleet.v1")
) + ["damfleet"]


def _imported_from_elsewhere(package: str, value: object) -> bool:
    """True for a name the package imports rather than defines or re-exports: a module,
    ``from __future__ import annotations``, or a class/function of another package."""
    if isinstance(value, types.ModuleType | __future__._Feature) or value is typing.TYPE_CHECKING:
        return True
    owner = getattr(value, "__module__", None)
    if isinstance(value, type | types.FunctionType | types.BuiltinFunctionType) and owner:
        return not (owner == package or owner.startswith(package + "."))
    return False


def test_every_package_is_covered() -> None:
    assert {"damfleet", "damfleet.client", "damfleet.storage", "damfleet.delivery", "damfleet.cli"} <= set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_exist_and_every_public_name_is_exported(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{package} has no __all__"
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not define: {missing}"
    public = {
        name for name, value in vars(module).items()
        if not name.startswith("_") and not _imported_from_elsewhere(package, value)
    }
    leaked = sorted(public - set(exported))
    assert not leaked, f"{package} has public names outside __all__ (export them or make them private): {leaked}"


def test_the_client_sdk_keeps_its_names() -> None:
    """The names scripts and docs import from ``damfleet.client`` since it was one module."""
    from damfleet import client

    for name in ("AssetHandle", "BatchHandle", "DamfleetClientError", "FleetClient", "JobControlError",
                 "JobNotFoundError", "QueueInfo", "ScheduleInfo", "batch_workflow_id", "new_workflow_id",
                 "request_workflow_id"):
        assert name in client.__all__
    assert set(client.FleetClient.__dict__) <= {"__module__", "__doc__", "__qualname__", "__firstlineno__",
                                                "__static_attributes__"}, "FleetClient's methods live in the modules"
    for method in ("submit", "submit_request", "batch", "submit_batch_request", "create_rescan_schedule", "queues"):
        assert callable(getattr(client.FleetClient, method))
