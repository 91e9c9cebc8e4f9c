"""`runq secrets set|ls|rm`: RunPod-style secrets for workers' environments (an endpoint's env
refers to one as "{{ RUNPOD_SECRET_NAME }}"). A value is read from stdin, never from argv, and
is never printed back."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from runq.cli.common import DEFAULT_URL, KeyOpt, UrlOpt, call, fail

secrets_app = typer.Typer(
    help='Secrets for workers\' env ("{{ RUNPOD_SECRET_NAME }}"): set, ls, rm.',
    no_args_is_help=True,
)
console = Console()


@secrets_app.command("set")
def set_secret(
    name: Annotated[str, typer.Argument(help="The secret's name.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Set NAME to what stdin holds (a trailing newline is dropped): `runq secrets set hf <
    token.txt`, or type it and end with Ctrl-D."""
    value = sys.stdin.read()
    if value.endswith("\n"):
        value = value[:-1]
    if not value:
        fail("no value on stdin: pipe the secret in, e.g. runq secrets set NAME < file", 2)
    call("PUT", url, api_key, f"/admin/secrets/{name}", {"value": value})
    console.print(
        f'set secret [bold]{name}[/bold]: refer to it as "{{{{ RUNPOD_SECRET_{name} }}}}"'
    )


@secrets_app.command("ls")
def list_secrets(
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The secrets' names and when each was set (values are never shown)."""
    rows = call("GET", url, api_key, "/admin/secrets")
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("name", "set at")
    for row in rows:
        at = row.get("updated_at")
        table.add_row(
            row["name"], datetime.fromtimestamp(at).isoformat(" ", "seconds") if at else "-"
        )
    console.print(table)


@secrets_app.command("rm")
def remove_secret(
    name: Annotated[str, typer.Argument(help="The secret's name.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Delete a secret; workers that refer to it then fail to start, saying so."""
    call("DELETE", url, api_key, f"/admin/secrets/{name}")
    console.print(f"deleted secret [bold]{name}[/bold]")
