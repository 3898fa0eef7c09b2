"""The ``damfleet`` command line (Typer + rich).

Commands live in sub-modules that register themselves on :data:`app`:
:mod:`damfleet.cli.dev` (dev, demo, submit), :mod:`damfleet.cli.jobs` (status, watch,
pause, resume, cancel, batch, queues), :mod:`damfleet.cli.schedules` (inbox rescan
schedules), :mod:`damfleet.cli.inference`
(the gRPC inference service), :mod:`damfleet.cli.fixity` (fixity audits) and
:mod:`damfleet.cli.codec` (the payload codec server).
"""

from __future__ import annotations

import importlib
import importlib.util

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="damfleet",
    help="Temporal-orchestrated media processing fleet: ingest, transcode, AI enrichment, distribution.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_COMMAND_MODULES = (
    "damfleet.cli.dev", "damfleet.cli.jobs", "damfleet.cli.schedules", "damfleet.cli.inference", "damfleet.cli.fixity",
    "damfleet.cli.codec",
)


def _plain_help_types() -> None:
    """Help text in click's plain words (``TEXT``, ``INTEGER``) instead of typer 0.29's
    Python annotations (``<str>``, ``<list[str]>``, and ``<bool>`` after every flag).

    Typer has no switch for this; its help columns call ``display_type_rich`` on each
    parameter, so that is the one method replaced. A flag shows no type at all.
    """
    from typer.core import TyperArgument, TyperOption

    names = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH"}

    def plain(self: TyperArgument | TyperOption, ctx: object) -> str | None:
        if self.metavar is not None:
            return self.metavar
        if getattr(self, "is_flag", False) or getattr(self, "is_bool_flag", False):
            return None
        label = self.display_type(ctx).strip("<>")  # type: ignore[arg-type]
        repeated = label.startswith("list[")
        label = label.removeprefix("list[").removesuffix("]")
        label = names.get(label, label.upper())
        return label + ("..." if repeated or self.nargs != 1 else "")

    def usage_name(self: TyperArgument) -> str:
        name = (self.metavar or self.name or "").upper()
        name += "..." if self.nargs != 1 else ""
        return name if self.required else f"[{name}]"

    TyperArgument.display_type_rich = plain  # type: ignore[method-assign]
    TyperOption.display_type_rich = plain  # type: ignore[method-assign]
    TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]


def _register() -> None:
    for name in _COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def main() -> None:
    """Console-script entry point."""
    _plain_help_types()
    _register()
    app()
