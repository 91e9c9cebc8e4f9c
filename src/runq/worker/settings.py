"""Worker settings read once from the environment, and the protocol's URL templates."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from runq import __version__

VERSION = f"runq-{__version__}"
DEFAULT_PING_MS = 10_000
MIN_PING_S = 0.1  # runpod turns values under 1000 ms into a 0 s busy loop; we floor instead


@dataclass(frozen=True)
class Settings:
    """What the control plane told this worker, with worker ids already substituted.

    Attributes:
        take_url: job-take URL (already holds a `?` query).
        done_url: job-done template; `$ID` is the job id.
        stream_url: job-stream template; `$ID` is the job id.
        ping_url: heartbeat URL, or None when pings are off.
        worker_id: this worker's id.
        api_key: sent raw as `Authorization`; empty means no header.
        ping_interval: seconds between pings.
        boot: cold-start marks sent on takes and pings (runq's extension; RunPod ignores it).
    """

    take_url: str
    done_url: str
    stream_url: str
    ping_url: str | None
    worker_id: str
    api_key: str
    ping_interval: float
    boot: str = ""  # `IMPORTED,LOADED` from runq.worker.boot

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Reads the RUNPOD_* variables, exactly as the runpod SDK substitutes them."""
        env = os.environ if env is None else env
        worker_id = env.get("RUNPOD_POD_ID") or str(uuid.uuid4())

        def sub(name: str, default: str) -> str:
            return env.get(name, default).replace("$RUNPOD_POD_ID", worker_id)

        return cls(
            # In GET_JOB `$ID` means the worker id (in done/stream it is the job id).
            take_url=sub("RUNPOD_WEBHOOK_GET_JOB", "").replace("$ID", worker_id),
            done_url=sub("RUNPOD_WEBHOOK_POST_OUTPUT", ""),
            stream_url=sub("RUNPOD_WEBHOOK_POST_STREAM", ""),
            ping_url=sub("RUNPOD_WEBHOOK_PING", "") or None,
            worker_id=worker_id,
            api_key=env.get("RUNPOD_AI_API_KEY", ""),
            ping_interval=_ping_seconds(env.get("RUNPOD_PING_INTERVAL")),
        )

    def take(self, batch_size: int, in_progress: bool) -> str:
        """The job-take URL for `batch_size` jobs.

        Example: `.../job-take/w1?gpu=cpu` with batch_size=3, in_progress=True gives
        `.../job-take-batch/w1?gpu=cpu&batch_size=3&job_in_progress=1`.
        """
        url = self.take_url
        if batch_size > 1:
            url = url.replace("/job-take/", "/job-take-batch/") + f"&batch_size={batch_size}"
        return url + f"&job_in_progress={1 if in_progress else 0}" + self._boot()

    def _boot(self) -> str:
        return f"&boot={self.boot}" if self.boot else ""

    def stop(self) -> str | None:
        """The job-stop long-poll URL, or None when the take URL has no `/job-take/`."""
        if "/job-take/" not in self.take_url:
            return None
        return self.take_url.replace("/job-take/", "/job-stop/")

    def done(self, job_id: str, is_stream: bool, take: int = 0) -> str:
        """The job-done URL for one job (final results and progress).

        `take` > 0 asks a runq control plane to answer with up to that many next jobs for this
        worker (`{"jobs": [...]}`), saving the job-take round trip; other servers ignore it.
        """
        flag = "true" if is_stream else "false"
        url = self.done_url.replace("$ID", _quote_id(job_id)) + f"&isStream={flag}"
        return url + f"&take={take}" if take > 0 else url

    def done_group(self, take: int) -> str:
        """runq's job-done-batch URL: several results in one post (only sent to runq)."""
        url = self.done_url.replace("/$ID", "").replace("/job-done/", "/job-done-batch/")
        return url + f"&take={take}"

    def stream(self, job_id: str) -> str:
        """The job-stream URL for one job; runpod sends isStream=false here too."""
        return self.stream_url.replace("$ID", _quote_id(job_id)) + "&isStream=false"

    def ping(self, job_ids: Iterable[str]) -> str:
        """The heartbeat URL; `job_id` is left out when no job is in progress."""
        url = self.ping_url or ""
        ids = ",".join(job_ids)
        query = f"job_id={quote(ids, safe=',')}&" if ids else ""
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}{query}runpod_version={VERSION}{self._boot()}"


def error_meta(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The (hostname, worker_id) pair runpod puts in handler error reports."""
    env = os.environ if env is None else env
    return env.get("RUNPOD_POD_HOSTNAME", "unknown"), env.get("RUNPOD_POD_ID", "unknown")


def _ping_seconds(raw: str | None) -> float:
    try:
        ms = int(raw) if raw else DEFAULT_PING_MS
    except ValueError:
        ms = DEFAULT_PING_MS
    return max(ms / 1000, MIN_PING_S)


def _quote_id(job_id: str) -> str:
    # Ids are URL-safe in practice; quoting only matters for odd ids a client chose.
    return quote(job_id, safe="")
