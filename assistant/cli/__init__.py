"""The `assistant` command: one module per group of commands; `main` is the installed entry point."""

from assistant.cli.app import app, main

__all__ = ["app", "main"]
