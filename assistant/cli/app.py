"""The `assistant` command. Every AssistantError becomes one line on stderr and a non-zero exit code; every usage
mistake (unknown command or option, missing argument, bad value) click's own short usage message and exit code 2."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer

from assistant.cli.answer import ask, chat
from assistant.cli.compare import compare
from assistant.cli.finetune import finetune_app
from assistant.cli.kb import ingest, kb_app, retrieve
from assistant.cli.serve import serve
from assistant.cli.system import doctor, ui
from assistant.errors import AssistantError, disk_full_as_error

# The click that typer runs on: typer >= 0.2x raises from its own vendored copy (typer._click), older releases from
# the click package. Catching the wrong one's ClickException turns every mistyped option into a traceback.
click = importlib.import_module(typer.BadParameter.__module__.rpartition(".")[0])

app = typer.Typer(
    help="Retrieval-augmented assistant with optional fine-tuning. Offline by default.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(ask)
app.command()(chat)
app.command()(ingest)
app.command()(retrieve)
app.add_typer(kb_app, name="kb")
app.add_typer(finetune_app, name="finetune")
app.command()(compare)
app.command()(doctor)
app.command()(serve)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(ui)


def _data_home() -> Path:
    from assistant.config import load_settings

    try:
        return load_settings().home
    except AssistantError:
        return Path.cwd()


def main() -> None:
    # Not click's standalone mode: it would turn Ctrl-C into "Aborted!" and exit 1; we exit 130 like a shell does.
    try:
        with disk_full_as_error(_data_home, "running the command"):  # for writes outside the store and training
            code = app(standalone_mode=False)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
