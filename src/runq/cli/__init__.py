"""The `runq` command (typer): `app` is the entry point (pyproject's [project.scripts]).

One module per group of commands, each registered by `app.py`; what they share (options, the
key lookup, the API call, the error idiom `fail`) is in `common.py`, so none imports another.
"""

from runq.cli.app import app

__all__ = ["app"]
