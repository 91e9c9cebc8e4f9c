"""`runq bundle build ENDPOINT_FILE|DIR`: build a worker bundle's venv ahead of its first start.

Registered by app.py with `register_bundle(app)`. Like bench.py, it must not import app.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from runq.bundles import BundleError, build, bundle_for
from runq.cli.common import fail
from runq.core.config import ServerConfig, load_config
from runq.core.spec import EndpointSpec, load_spec
from runq.errors import SpecError

console = Console()
err = Console(stderr=True, soft_wrap=True)  # a message is one line: scripts grep it
bundle_app = typer.Typer(
    help="Worker bundles: a venv per requirements file, or an image per folder, built once.",
    no_args_is_help=True,
)


@bundle_app.command("build")
def build_command(
    endpoint: Annotated[
        Path, typer.Argument(help="Endpoint file, or a folder holding endpoint.toml.")
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", envvar="RUNQ_CONFIG", help="Server config TOML (env RUNQ_CONFIG)."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", envvar="RUNQ_DATA_DIR", help="Where bundles live (env RUNQ_DATA_DIR)."
        ),
    ] = None,
    find_links: Annotated[
        list[str] | None,
        typer.Option(
            "--find-links",
            envvar="RUNQ_BUNDLE_FIND_LINKS",
            help="Extra folder or URL of packages, given to pip (env RUNQ_BUNDLE_FIND_LINKS).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Build again even when up to date (say, the build step's output was removed).",
        ),
    ] = False,
    no_index: Annotated[
        bool,
        typer.Option(
            "--no-index",
            envvar="RUNQ_BUNDLE_NO_INDEX",
            help="Install only from --find-links, never from an index (env RUNQ_BUNDLE_NO_INDEX).",
        ),
    ] = False,
    build_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--build-arg",
            envvar="RUNQ_BUNDLE_BUILD_ARGS",
            help="KEY=VALUE for an ARG of the Containerfile, e.g. BASE=IMAGE; repeatable "
            "(env RUNQ_BUNDLE_BUILD_ARGS, space-separated). Not part of the image's tag.",
        ),
    ] = None,
) -> None:
    """Make the venv of the endpoint's [worker] requirements, or the image of its
    [worker.container] build (a no-op while they are unchanged)."""
    try:
        overrides = {"data_dir": str(data_dir) if data_dir else None}
        server_config = load_config(config, overrides)
        spec = load_spec(endpoint)
        bundle = bundle_for(spec, server_config.data_dir)
    except (SpecError, BundleError) as exc:
        fail(str(exc), 2)
    if spec.worker.container.build:  # an image built from the folder (fleet/image_build.py)
        _build_image(spec, server_config, force, _build_args(build_arg or []))
        return
    if build_arg:
        err.print(
            f"[red]error:[/red] --build-arg: endpoint '{spec.name}' builds no image "
            "(no \\[worker.container] build)"
        )
        raise typer.Exit(2)
    if bundle is None:
        fail(
            f"{spec.source_path}: endpoint '{spec.name}' has no [worker] requirements: "
            "nothing to build",
            2,
        )
    pip_args = [arg for link in find_links or [] for arg in ("--find-links", link)]
    if no_index:
        pip_args.append("--no-index")
    started = time.monotonic()
    try:
        made = build(bundle, pip_args, force=force)
    except BundleError as exc:
        fail(str(exc))
    if made:
        took = time.monotonic() - started
        console.print(f"built {bundle.venv} in {took:.1f}s", markup=False, soft_wrap=True)
    else:
        message = f"up to date: {bundle.venv} (requirements and build unchanged, nothing to do)"
        console.print(message, markup=False, soft_wrap=True)


def _build_args(given: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--build-arg {item!r}: expected KEY=VALUE", 2)
        found[key] = value
    return found


def _build_image(
    spec: EndpointSpec, server_config: ServerConfig, force: bool, build_args: dict[str, str]
) -> None:
    from runq.fleet.containers import ContainerError, ContainerWorkers
    from runq.fleet.image_build import ImageBuildError, build_image

    started = time.monotonic()
    try:
        engine = ContainerWorkers(server_config).engine()
        tag, made = build_image(engine, spec, force=force, build_args=build_args)
    except (ContainerError, ImageBuildError) as exc:
        fail(str(exc))
    if made:
        console.print(f"built {tag} in {time.monotonic() - started:.1f}s", markup=False)
    else:
        console.print(f"up to date: {tag} (the folder is unchanged)", markup=False)


def register_bundle(app: typer.Typer) -> None:
    app.add_typer(bundle_app, name="bundle")
