"""`runq cache pull|ls|rm`: this host's model cache, the one `runq serve` on the same data dir
gives its workers. It works on the files directly (no control plane needed), so a host can be
warmed before it serves."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from runq.cli.common import fail
from runq.cli.tables import Column, show
from runq.core.config import ServerConfig, load_config
from runq.errors import SpecError
from runq.models import ModelCache, ModelError

cache_app = typer.Typer(
    help="This host's model cache (under the data dir): pull, ls, rm.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # a message is one line: scripts grep it

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", envvar="RUNQ_CONFIG", help="Server config TOML (env RUNQ_CONFIG)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="RUNQ_DATA_DIR", help="Holds the model cache (env RUNQ_DATA_DIR)."
    ),
]


_fail = fail


def _config(config: Path | None, data_dir: Path | None) -> ServerConfig:
    try:
        return load_config(config, {"data_dir": str(data_dir) if data_dir else None})
    except SpecError as exc:
        _fail(str(exc), 2)
        raise  # unreachable: _fail exits


def _cache(server: ServerConfig) -> ModelCache:
    return ModelCache(server.model_cache_dir, server.model_cache_max_bytes)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


@cache_app.command("pull")
def pull(
    source: Annotated[
        str, typer.Argument(help="hf://org/name, https://..., file:///path or volume://NAME/path.")
    ],
    revision: Annotated[
        str,
        typer.Option(
            "--revision",
            envvar="RUNQ_MODEL_REVISION",
            help="hf branch, tag or commit (env RUNQ_MODEL_REVISION).",
        ),
    ] = "",
    sha256: Annotated[
        str,
        typer.Option(
            "--sha256",
            envvar="RUNQ_MODEL_SHA256",
            help="Expected digest of a single-file source (env RUNQ_MODEL_SHA256).",
        ),
    ] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Fetch a model into this host's cache (once; later pulls reuse it). Prints its path."""
    server = _config(config, data_dir)
    volumes: dict[str, str] = {}
    for host in reversed(server.hosts):  # the first host to declare a volume name wins
        volumes.update(host.volumes)
    try:
        path = _cache(server).pull(source, revision, sha256, volumes=volumes, base_dir=Path.cwd())
    except ModelError as exc:
        _fail(str(exc))
        return
    err.print(f"cached {source} in {server.model_cache_dir}")
    print(path)


CACHE_COLUMNS = (
    Column("source", fold=True),
    Column("revision", drop=2, fold=True),
    Column("kind"),
    Column("size", right=True),
    Column("sha256 / commit", drop=3),
    Column("last used", drop=1),
    Column("path", fold=True),
)


@cache_app.command("ls")
def ls(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list on stdout.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List cached models, most recently used first."""
    server = _config(config, data_dir)
    models = _cache(server).ls()
    if as_json:
        print(json.dumps([asdict(model) for model in models]))
        return
    cells = [
        [
            model.source,
            model.revision or "-",
            model.kind,
            _size(model.size),
            model.sha256[:12],
            datetime.fromtimestamp(model.last_used).strftime("%Y-%m-%d %H:%M"),
            model.path,
        ]
        for model in models
    ]
    show(console, CACHE_COLUMNS, cells)
    total = sum(model.size for model in models)
    console.print(
        f"{len(models)} model(s), {_size(total)} of {_size(server.model_cache_max_bytes)}"
    )


@cache_app.command("rm")
def rm(
    source: Annotated[str, typer.Argument(help="The source as pulled, e.g. hf://org/name.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Remove every cached revision of a model (refused while a worker runs from it)."""
    server = _config(config, data_dir)
    try:
        removed = _cache(server).rm(source)
    except ModelError as exc:
        _fail(str(exc))
        return
    if removed == 0:
        _fail(f"{source} is not in the cache at {server.model_cache_dir}")
    console.print(f"removed {source} ({removed} revision(s))")
