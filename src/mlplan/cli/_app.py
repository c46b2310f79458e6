"""The ``mlplan`` command: a thin layer that parses, calls one library function, renders.

Errors from the library render as one red line (several for a plan with several problems)
and exit 2 for usage errors, 1 for failures; ``--debug`` (or ``MLPLAN_DEBUG=1``) shows the
traceback instead.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from mlplan.cli._render import err_console
from mlplan.errors import MlplanError

__all__ = ["JsonOption", "ProjectOption", "app", "main", "opened", "workspace"]


_W = TypeVar("_W")


def _debug(ctx: Any) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("MLPLAN_DEBUG", "") not in ("", "0")


def _leaf_command(group: Any, ctx: Any, args: list[str]) -> Any:
    """The command that ``args`` (the words after ``mlplan``) run, through nested groups (a
    group that no further word names: the group itself, which may be a command too, as
    ``mlplan monitor`` is)."""
    command = group
    words = iter(a for a in args if not a.startswith("-"))
    while hasattr(command, "get_command"):
        name = next(words, None)
        found = None if name is None else command.get_command(ctx, name)
        if found is None:
            return command
        command = found
    return command


def _flag(command: Any, param: str) -> str | None:
    """How the command line sets the library's parameter ``param``: the option (or argument)
    of the command whose Python name is the same."""
    for option in getattr(command, "params", ()):
        if option.name == param:
            if option.param_type_name != "option":
                return str(option.human_readable_name)
            longs = [o for o in option.opts if o.startswith("--")]
            return str((longs or option.opts)[0])
    return None


def _red_line(text: str) -> None:
    err_console.print("error: " + text, style="red", markup=False, highlight=False, soft_wrap=True)


class _Group(TyperGroup):
    """Turns mlplan errors into one red line and the error's exit code; an error about a
    parameter names the option that sets it. A usage error of the command line itself (an
    unknown option, a missing argument) is one red line too, with where to find help."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except typer.Abort:
            _red_line("aborted")
            sys.exit(1)
        except typer.TyperException as exc:  # click's errors, as Typer ships click
            code = int(getattr(exc, "exit_code", 2))
            context = getattr(exc, "ctx", None)
            where = f" (see {context.command_path} --help)" if context and code == 2 else ""
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            if message:  # a group called alone has printed its help, and says nothing more
                _red_line(message + where)
            sys.exit(code)
        # Without standalone mode click returns the exit code of an Exit it caught.
        sys.exit(result if isinstance(result, int) else 0)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta.setdefault("mlplan.words", list(args))  # the root's: the whole command line
        rest: list[str] = super().parse_args(ctx, args)
        return rest

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MlplanError as exc:
            if _debug(ctx):
                raise
            message = str(exc)
            if exc.params:  # name the options that set the parameters at fault
                command = _leaf_command(self, ctx, ctx.meta.get("mlplan.words", []))
                flags = {p: _flag(command, p) for p in exc.params}
                message = exc.naming({p: f for p, f in flags.items() if f is not None})
            lines = message.splitlines() or [type(exc).__name__]
            _red_line(lines[0])
            for line in lines[1:]:
                err_console.print(line, style="red", markup=False, highlight=False, soft_wrap=True)
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
        from mlplan._version import __version__

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


# The workspaces a command opened, closed before the process exits (see main).
_opened: list[Any] = []


def opened(ws: _W) -> _W:
    """``ws``, closed when the command ends (its store's connections released)."""
    _opened.append(ws)
    return ws


def workspace(project: Path | None) -> Any:
    """The workspace for ``--project`` (imported lazily to keep ``--help`` fast)."""
    from mlplan.workspace import Workspace

    return opened(Workspace.find(project))


def main() -> None:
    """Entry point of the ``mlplan`` console script."""
    try:
        app()
    finally:
        _before_exit()


def _before_exit() -> None:
    """Close the workspaces the command opened (SQLite folds its write-ahead log in), then
    freeze every object still alive: a command is one short process, and the collections
    Python makes as it exits would walk each of them for cycles (0.1-0.2 s of every
    command) only for the memory to go back to the system."""
    for ws in _opened:
        with contextlib.suppress(Exception):  # the command's own outcome stands
            ws.close()
    _opened.clear()  # main() called again in one process starts afresh
    gc.freeze()
