"""The ``mlplan`` command: a thin layer that parses, calls one library function, renders.

Errors from the library render as one red line (several for a plan with several problems)
and exit 2 for usage errors, 1 for failures; ``--debug`` (or ``MLPLAN_DEBUG=1``) shows the
traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mlplan.cli._render import err_console
from mlplan.errors import MlplanError

__all__ = ["JsonOption", "ProjectOption", "app", "main", "workspace"]


def _debug(ctx: Any) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("MLPLAN_DEBUG", "") not in ("", "0")


class _Group(TyperGroup):
    """Turns mlplan errors into one red line and the error's exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MlplanError as exc:
            if _debug(ctx):
                raise
            lines = str(exc).splitlines() or [type(exc).__name__]
            for i, line in enumerate(lines):
                err_console.print(
                    ("error: " if i == 0 else "") + line,
                    style="red",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            # The reader left (`mlplan lineage ... | head`): stop quietly, as SIGPIPE would.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None
        except Exception as exc:
            # A bug, not bad input: say so in one line; the traceback is one flag away.
            if _debug(ctx) or type(exc).__module__.startswith("typer"):
                raise
            err_console.print(
                f"error: internal error: {type(exc).__name__}: {exc}. This is a bug in mlplan; "
                "rerun with --debug for the traceback and report it",
                style="red",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Group,
    name="mlplan",
    help="Run a machine-learning project from its plan to production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from mlplan import __version__

        typer.echo(f"mlplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """mlplan: one plan file drives every stage; `mlplan status` shows what is done."""


ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        envvar="MLPLAN_PROJECT",
        file_okay=False,
        help="Project folder (default: the nearest folder upwards holding mlplan.yaml).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def workspace(project: Path | None) -> Any:
    """The workspace for ``--project`` (imported lazily to keep ``--help`` fast)."""
    from mlplan.workspace import Workspace

    return Workspace.find(project)


def main() -> None:
    """Entry point of the ``mlplan`` console script."""
    app()
