"""Preloaded start: one template process per endpoint on this host forks new workers.

The template is the endpoint's own worker command run with RUNQ_TEMPLATE_SOCKET set (see
`runq.worker.template`): it imports the handler and loads the model once, into CPU memory, then
forks a worker per request, so a cold start costs a fork instead of an import and a load. Only
runq's native worker SDK does this; a command that exits or never listens (a runpod-SDK handler,
a crash in its init) is reported once and the endpoint falls back to plain starts.

The forked workers are the template's children, not ours: the template reaps them and reports
each exit code on the connection that asked for the fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from runq.core.spec import EndpointSpec

log = logging.getLogger("runq.fleet")

TEMPLATE_SOCKET_ENV = "RUNQ_TEMPLATE_SOCKET"  # runq.worker.template reads it (no import there)
_PROBE_S = 0.02
_FORK_REPLY_S = 10.0
_STOP_GRACE_S = 5.0
# Variables naming one worker: the template is no worker, its children get their own.
_WORKER_ONLY = ("RUNQ_WORKER_ID", "PORT", "PORT_HEALTH", "TMPDIR")


class ForkedProcess:
    """A worker forked by a template, shaped like asyncio.subprocess.Process where the local
    provisioner needs it: `pid`, `returncode`, `wait()`. Its pid is also its process group."""

    def __init__(
        self, pid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.pid = pid
        self.forked_at = time.time()
        self.returncode: int | None = None
        self._reader = reader
        self._writer = writer
        self._watch = asyncio.create_task(self._wait_exit(), name=f"forked-{pid}")

    async def wait(self) -> int:
        return await asyncio.shield(self._watch)

    async def _wait_exit(self) -> int:
        code = -1
        try:
            line = await self._reader.readline()
            if line:
                code = int(json.loads(line)["exit"])
            else:
                # The template died without telling: its children die with it (PDEATHSIG);
                # make sure of it, since nobody else can reap or signal them for us.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("forked worker %d: unreadable exit report: %r", self.pid, exc)
        finally:
            self._writer.close()
        self.returncode = code
        return code


class _Template:
    def __init__(self, process: asyncio.subprocess.Process, address: str) -> None:
        self.process = process
        self.address = address  # "@name": Linux abstract socket (no file, no path limit)

    @property
    def connect_to(self) -> str:
        return "\0" + self.address[1:]


class ForkServers:
    """The template processes of this host, one per preloaded endpoint, started on first use."""

    def __init__(
        self,
        log_dir: Path,
        command: Callable[[EndpointSpec], Awaitable[tuple[str, ...]]],
        preexec: Callable[[], None],
    ) -> None:
        self._log_dir = log_dir
        self._command = command  # the worker command to run, as the provisioner resolves it
        self._preexec = preexec
        self._templates: dict[str, _Template] = {}
        self._failed: dict[str, str] = {}  # endpoint -> why it starts plainly now
        self._locks: dict[str, asyncio.Lock] = {}

    def usable(self, endpoint: str) -> bool:
        """Whether `endpoint`'s workers may still be forked (its template has not failed)."""
        return endpoint not in self._failed

    async def spawn(
        self, spec: EndpointSpec, env: Mapping[str, str], log_path: Path, cwd: Path
    ) -> ForkedProcess | None:
        """Forks a worker with `env` from the endpoint's template (started if needed), in
        `cwd`, printing into `log_path`; None when the endpoint cannot be preloaded, and the
        caller starts the worker plainly."""
        template = await self._template(spec, env)
        if template is None:
            return None
        request = {"env": dict(env), "cwd": str(cwd), "log": str(log_path)}
        try:
            reader, writer = await _connect(template.connect_to)
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), _FORK_REPLY_S)
            pid = int(json.loads(line)["pid"])
        except (OSError, ValueError, KeyError, TypeError, TimeoutError) as exc:
            await self._give_up(spec.name, f"the template did not fork a worker ({exc!r})")
            return None
        return ForkedProcess(pid, reader, writer)

    def failed(self, endpoint: str) -> str | None:
        """Why `endpoint` falls back to plain starts, if it does."""
        return self._failed.get(endpoint)

    async def stop(self, endpoint: str) -> None:
        """Stops the endpoint's template (after its workers: it is their parent); a redeploy
        then preloads the new code."""
        self._failed.pop(endpoint, None)
        template = self._templates.pop(endpoint, None)
        if template is None or template.process.returncode is not None:
            return
        _signal_group(template.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(template.process.wait(), _STOP_GRACE_S)
        except TimeoutError:
            _signal_group(template.process.pid, signal.SIGKILL)
            await template.process.wait()

    async def shutdown(self) -> None:
        await asyncio.gather(*(self.stop(name) for name in list(self._templates)))

    async def _template(self, spec: EndpointSpec, env: Mapping[str, str]) -> _Template | None:
        async with self._locks.setdefault(spec.name, asyncio.Lock()):
            if spec.name in self._failed:
                return None
            template = self._templates.get(spec.name)
            if template is not None and template.process.returncode is None:
                return template
            if template is not None:
                code = template.process.returncode
                await self._give_up(spec.name, f"the template exited with code {code}")
                return None
            return await self._start(spec, env)

    async def _start(self, spec: EndpointSpec, env: Mapping[str, str]) -> _Template | None:
        address = f"@runq-{spec.name}-{secrets.token_hex(6)}"
        template_env = {
            **{k: v for k, v in env.items() if k not in _WORKER_ONLY},
            TEMPLATE_SOCKET_ENV: address,
            # Nothing may touch a GPU before the fork: a CUDA context does not survive it.
            "CUDA_VISIBLE_DEVICES": "",
        }
        template_env = {k: v for k, v in template_env.items() if not k.startswith("RUNPOD_")}
        log_path = self._log_dir / spec.name / "template.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(log_path, "ab") as log_file:
                process = await asyncio.create_subprocess_exec(
                    *await self._command(spec),
                    cwd=spec.worker.dir,
                    env=template_env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=self._preexec,
                )
        except OSError as exc:
            await self._give_up(spec.name, f"cannot start the template: {exc}")
            return None
        template = _Template(process, address)
        self._templates[spec.name] = template
        timeout = spec.scaling.init_timeout_s
        try:
            ready = await self._ready(template, timeout)
        except asyncio.CancelledError:  # the worker was stopped while the template loaded
            self._templates.pop(spec.name, None)
            _signal_group(process.pid, signal.SIGKILL)
            raise
        if ready:
            log.info("preload: template %d of %s holds the model", process.pid, spec.name)
            return template
        code = process.returncode
        why = (
            f"the template exited with code {code} before it listened (preload needs a "
            f"runq.worker handler; see {log_path})"
            if code is not None
            else f"the template was not ready within init_timeout ({timeout:g}s)"
        )
        await self._give_up(spec.name, why)
        return None

    async def _ready(self, template: _Template, timeout_s: float) -> bool:
        """Waits until the template listens (it has loaded the model), exits, or times out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline and template.process.returncode is None:
            try:
                _, writer = await _connect(template.connect_to)
            except OSError:
                await asyncio.sleep(_PROBE_S)
                continue
            writer.close()  # an empty request: the template ignores it
            return True
        return False

    async def _give_up(self, endpoint: str, why: str) -> None:
        log.error("preload of %s: %s; workers start plainly from now on", endpoint, why)
        template = self._templates.pop(endpoint, None)
        self._failed[endpoint] = why
        if template is not None and template.process.returncode is None:
            _signal_group(template.process.pid, signal.SIGKILL)
            await template.process.wait()


async def _connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to a template. Connected by hand: uvloop rejects abstract socket names,
    and a unix socket connects (or is refused) at once, so this does not block the loop."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return await asyncio.open_unix_connection(sock=sock)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
