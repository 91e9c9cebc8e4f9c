"""`runq doctor`: check this host for image workers (engine, runtime, --init, GPUs through CDI)
and print the fix for each problem. Registered by cli.py with `register_doctor(app)`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from runq.cli.common import ConfigOpt, DataDirOpt, fail
from runq.core.config import load_config
from runq.errors import SpecError

console = Console()
err = Console(stderr=True, soft_wrap=True)  # a message is one line: scripts grep it


def doctor(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Check that this host can run image workers; print the fix for each problem."""
    from runq.fleet.doctor import run_checks

    try:
        server_config = load_config(config, {"data_dir": str(data_dir) if data_dir else None})
    except SpecError as exc:
        fail(str(exc), 2)
    checks = run_checks(server_config)
    table = Table("check", "", Column("found", overflow="fold"))  # wrapped, never cut
    for check in checks:
        mark = "[green]ok[/green]" if check.ok else "[red]FAIL[/red]"
        if not check.ok and not check.required:
            mark = "[yellow]warn[/yellow]"
        table.add_row(check.name, mark, escape(check.found))
    console.print(table)
    for check in checks:
        if check.fix and not check.ok:
            # On a line of its own, unwrapped: a command to copy.
            console.print(f"fix ({check.name}): {escape(check.fix)}", soft_wrap=True)
    if not all(check.ok or not check.required for check in checks):
        raise typer.Exit(1)


def register_doctor(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
