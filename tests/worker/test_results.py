"""The pure parts of runq.worker: result bodies, URLs, back-off; and local test mode."""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runq.worker import results
from runq.worker.backoff import PollBackoff, post_delays
from runq.worker.config import WorkerConfig
from runq.worker.execute import Kind, kind_of, run_call, run_stream
from runq.worker.results import ErrorMeta
from runq.worker.settings import VERSION, Settings

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"
META = ErrorMeta(hostname="host-1", worker_id="w1", version=VERSION)

# --- handler return value -> job-done body (spec 2.7) ---------------------------------------

RETURN_CASES = [
    pytest.param({"a": 1}, {"output": {"a": 1}}, id="a dict becomes the output"),
    pytest.param(
        {"a": 1, "error": "bad"},
        {"output": {"a": 1}, "error": "bad"},
        id="error kept beside output",
    ),
    pytest.param({"error": "bad"}, {"error": "bad"}, id="output dropped when only error was in it"),
    pytest.param({"a": 1, "error": None}, {"output": {"a": 1}}, id="a falsy error is dropped"),
    pytest.param({"error": ""}, {}, id="empty error and nothing else gives an empty body"),
    pytest.param(
        {"a": 1, "refresh_worker": True},
        {"output": {"a": 1}, "stopPod": True},
        id="refresh_worker becomes stopPod",
    ),
    pytest.param({"refresh_worker": True}, {"stopPod": True}, id="refresh_worker alone"),
    pytest.param({"refresh_worker": False, "a": 1}, {"output": {"a": 1}}, id="falsy refresh"),
    pytest.param({}, {}, id="an empty dict gives an empty body"),
    pytest.param({"output": 5}, {"output": {"output": 5}}, id="output key nests twice"),
    pytest.param(None, {"output": None}, id="None gives null output"),
    pytest.param("hi", {"output": "hi"}, id="a string"),
    pytest.param([1, {"b": 2}], {"output": [1, {"b": 2}]}, id="a list"),
    pytest.param(False, {"output": False}, id="a bool"),
    pytest.param(0, {"output": 0}, id="zero"),
    pytest.param(1.5, {"output": 1.5}, id="a float"),
]


@pytest.mark.parametrize(("value", "body"), RETURN_CASES)
def test_result_body(value: Any, body: dict[str, Any]) -> None:
    before = copy.deepcopy(value)
    assert results.result_body(value) == body
    assert value == before  # the handler's own dict is not mutated


@pytest.mark.parametrize(("value", "body"), RETURN_CASES)
def test_result_body_matches_runpod(value: Any, body: dict[str, Any]) -> None:
    rp_job = pytest.importorskip("runpod.serverless.modules.rp_job")
    theirs = asyncio.run(rp_job.run_job(lambda job: copy.deepcopy(value), {"id": "j1"}))
    assert json.dumps(results.result_body(value)) == json.dumps(theirs)


def test_error_body_is_a_json_string_report() -> None:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        body = results.error_body(exc, "Traceback ...", META)
    assert list(body) == ["error"]
    assert json.loads(body["error"]) == {
        "error_type": "<class 'ValueError'>",
        "error_message": "boom",
        "error_traceback": "Traceback ...",
        "hostname": "host-1",
        "worker_id": "w1",
        "runpod_version": VERSION,
    }


@pytest.mark.parametrize(
    ("chunk", "final"),
    [
        pytest.param({"error": "bad"}, {"error": "bad"}, id="an error chunk ends the stream"),
        pytest.param({"error": {"code": 1}}, {"error": "{'code': 1}"}, id="error made a string"),
        pytest.param({"error": ""}, None, id="a falsy error chunk is streamed"),
        pytest.param({"i": 1}, None, id="a dict chunk is streamed"),
        pytest.param("error", None, id="a string chunk is streamed"),
    ],
)
def test_chunk_error(chunk: Any, final: dict[str, Any] | None) -> None:
    assert results.chunk_error(chunk) == final


@pytest.mark.parametrize(
    ("body", "encoded"),
    [
        pytest.param({"output": "é"}, '{"output": "é"}'.encode(), id="non-ASCII kept as UTF-8"),
        pytest.param({"output": "\ud800"}, b'{"output": "\\ud800"}', id="lone surrogate escaped"),
    ],
)
def test_encode(body: dict[str, Any], encoded: bytes) -> None:
    assert results.encode(body) == encoded


def test_encode_rejects_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        results.encode({"output": {1, 2}})


# --- running handlers (no network) ------------------------------------------------------------


def _sync_gen(job: dict[str, Any]) -> Any:
    yield from job["input"]


async def _async_gen(job: dict[str, Any]) -> Any:
    for chunk in job["input"]:
        yield chunk


def _failing_gen(job: dict[str, Any]) -> Any:
    yield 1
    raise RuntimeError("mid-stream")


async def _async_return(job: dict[str, Any]) -> Any:
    return {"got": job["input"]}


def _sync_fail(job: dict[str, Any]) -> Any:
    raise KeyError("k")


class _AsyncCallable:
    async def __call__(self, job: dict[str, Any]) -> Any:
        return 1


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        pytest.param(lambda job: 1, Kind.SYNC, id="a lambda is sync"),
        pytest.param(_async_return, Kind.ASYNC, id="async def"),
        pytest.param(_sync_gen, Kind.GENERATOR, id="a generator function"),
        pytest.param(_async_gen, Kind.ASYNC_GENERATOR, id="an async generator function"),
        pytest.param(_AsyncCallable(), Kind.ASYNC, id="an object with async __call__"),
    ],
)
def test_kind_of(handler: Any, kind: Kind) -> None:
    assert kind_of(handler) is kind


def _run_stream(handler: Any, payload: Any, aggregate: bool) -> tuple[Any, list[Any]]:
    sent: list[Any] = []

    async def sink(chunk: Any) -> None:
        sent.append(chunk)

    body = asyncio.run(
        run_stream(
            handler,
            kind_of(handler),
            {"id": "j", "input": payload},
            sink,
            aggregate,
            stopped=lambda: False,
        )
    )
    return body, sent


@pytest.mark.parametrize(
    ("handler", "payload", "aggregate", "body", "sent"),
    [
        pytest.param(_sync_gen, [1, 2], False, {"output": []}, [1, 2], id="sync gen, no aggregate"),
        pytest.param(_sync_gen, [1, 2], True, {"output": [1, 2]}, [1, 2], id="sync gen, aggregate"),
        pytest.param(
            _async_gen,
            [{"i": 0}],
            True,
            {"output": [{"i": 0}]},
            [{"i": 0}],
            id="async gen, aggregate",
        ),
        pytest.param(
            _async_gen,
            [1, {"error": "x"}, 3],
            True,
            {"error": "x"},
            [1],
            id="an error chunk stops and is not streamed",
        ),
        pytest.param(_sync_gen, [], True, {"output": []}, [], id="no chunks"),
    ],
)
def test_run_stream(
    handler: Any, payload: Any, aggregate: bool, body: dict[str, Any], sent: list[Any]
) -> None:
    assert _run_stream(handler, payload, aggregate) == (body, sent)


def test_run_stream_exception_mid_stream() -> None:
    body, sent = _run_stream(_failing_gen, None, True)
    assert sent == [1]
    assert body["error"].startswith("handler: mid-stream \ntraceback: Traceback")
    assert "RuntimeError: mid-stream" in body["error"]


def test_run_stream_stopped_sync_generator_returns_nothing() -> None:
    body = asyncio.run(
        run_stream(
            _sync_gen,
            Kind.GENERATOR,
            {"id": "j", "input": [1, 2]},
            None,
            True,
            stopped=lambda: True,
        )
    )
    assert body is None


@pytest.mark.parametrize(
    ("handler", "body"),
    [
        pytest.param(_async_return, {"output": {"got": 7}}, id="async handler"),
        pytest.param(lambda job: job["input"] + 1, {"output": 8}, id="sync handler in a thread"),
        pytest.param(
            lambda job: _async_return(job),
            {"output": {"got": 7}},
            id="sync handler returning a coroutine",
        ),
    ],
)
def test_run_call(handler: Any, body: dict[str, Any]) -> None:
    job = {"id": "j", "input": 7}
    assert asyncio.run(run_call(handler, kind_of(handler), job, META)) == body


def test_run_call_exception_report_shows_the_handler() -> None:
    body = asyncio.run(run_call(_sync_fail, Kind.SYNC, {"id": "j", "input": 1}, META))
    report = json.loads(body["error"])
    assert report["error_type"] == "<class 'KeyError'>"
    assert report["error_message"] == "'k'"
    assert "in _sync_fail" in report["error_traceback"]


# --- config --------------------------------------------------------------------------------


def test_config_names_an_unknown_key() -> None:
    with pytest.raises(ValueError, match="'handlr'"):
        WorkerConfig.from_dict({"handler": print, "handlr": print})


def test_config_accepts_runpod_keys() -> None:
    cfg = WorkerConfig.from_dict(
        {"handler": _sync_gen, "return_aggregate_stream": True, "rp_args": {}, "refresh_worker": 1}
    )
    assert (cfg.kind, cfg.aggregate, cfg.refresh_worker) == (Kind.GENERATOR, True, True)
    assert cfg.concurrency_modifier(3) == 3


# --- URL templates (spec 2.2) --------------------------------------------------------------

BASE = "http://127.0.0.1:8000/v2/echo"
ENV = {
    "RUNPOD_WEBHOOK_GET_JOB": f"{BASE}/job-take/$ID?gpu=cpu",
    "RUNPOD_WEBHOOK_POST_OUTPUT": f"{BASE}/job-done/$RUNPOD_POD_ID/$ID?gpu=cpu",
    "RUNPOD_WEBHOOK_POST_STREAM": f"{BASE}/job-stream/w-abc/$ID?gpu=cpu",
    "RUNPOD_WEBHOOK_PING": f"{BASE}/ping/$RUNPOD_POD_ID?gpu=cpu",
    "RUNPOD_POD_ID": "w-abc",
}
S = Settings.from_env(ENV)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            S.take(1, False),
            f"{BASE}/job-take/w-abc?gpu=cpu&job_in_progress=0",
            id="single take, idle ($ID in GET_JOB is the worker id)",
        ),
        pytest.param(
            S.take(1, True),
            f"{BASE}/job-take/w-abc?gpu=cpu&job_in_progress=1",
            id="single take, busy",
        ),
        pytest.param(
            S.take(3, True),
            f"{BASE}/job-take-batch/w-abc?gpu=cpu&batch_size=3&job_in_progress=1",
            id="batch take",
        ),
        pytest.param(S.stop(), f"{BASE}/job-stop/w-abc?gpu=cpu", id="stop keeps the query"),
        pytest.param(
            S.done("j-1", False), f"{BASE}/job-done/w-abc/j-1?gpu=cpu&isStream=false", id="done"
        ),
        pytest.param(
            S.done("j-1", True),
            f"{BASE}/job-done/w-abc/j-1?gpu=cpu&isStream=true",
            id="done after a stream",
        ),
        pytest.param(
            S.stream("j-1"),
            f"{BASE}/job-stream/w-abc/j-1?gpu=cpu&isStream=false",
            id="stream says isStream=false",
        ),
        pytest.param(
            S.ping([]),
            f"{BASE}/ping/w-abc?gpu=cpu&runpod_version={VERSION}",
            id="ping without jobs omits job_id",
        ),
        pytest.param(
            S.ping(["a", "b"]),
            f"{BASE}/ping/w-abc?gpu=cpu&job_id=a,b&runpod_version={VERSION}",
            id="ping lists jobs comma-separated",
        ),
    ],
)
def test_urls(url: str | None, expected: str) -> None:
    assert url == expected


def test_stop_disabled_without_job_take_in_url() -> None:
    settings = Settings.from_env({**ENV, "RUNPOD_WEBHOOK_GET_JOB": "http://h/take?x=1"})
    assert settings.stop() is None


def test_ping_url_without_query() -> None:
    settings = Settings.from_env({**ENV, "RUNPOD_WEBHOOK_PING": "http://h/ping/w"})
    assert settings.ping(["a"]) == f"http://h/ping/w?job_id=a&runpod_version={VERSION}"


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        pytest.param(None, 10.0, id="default 10000 ms"),
        pytest.param("1500", 1.5, id="milliseconds, not floored to whole seconds"),
        pytest.param("0", 0.1, id="floored at 100 ms, never a busy loop"),
        pytest.param("soon", 10.0, id="garbage falls back to the default"),
    ],
)
def test_ping_interval(raw: str | None, seconds: float) -> None:
    env = {**ENV} if raw is None else {**ENV, "RUNPOD_PING_INTERVAL": raw}
    assert Settings.from_env(env).ping_interval == seconds


# --- back-off --------------------------------------------------------------------------------


def test_poll_backoff_errors_double_to_two_seconds() -> None:
    backoff = PollBackoff()
    assert [backoff.error() for _ in range(6)] == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert backoff.success() == 0.0
    assert backoff.error() == 0.2  # a success resets the schedule


def test_poll_backoff_held_204_repolls_at_once() -> None:
    backoff = PollBackoff()
    assert [backoff.empty(30.0) for _ in range(10)] == [0.0] * 10


def test_poll_backoff_unheld_204s_back_off_after_five() -> None:
    backoff = PollBackoff()
    # 4 quick 204s re-poll at once, the 5th and later back off like errors
    assert [backoff.empty(0.001) for _ in range(7)] == [0.0, 0.0, 0.0, 0.0, 0.2, 0.4, 0.8]
    assert backoff.empty(1.0) == 0.0  # a held one resets


def test_poll_backoff_throttled_waits_five_seconds() -> None:
    assert PollBackoff().throttled() == 5.0


def test_post_delays_ride_out_a_restart() -> None:
    delays = post_delays()
    assert len(delays) == 9  # 10 attempts
    assert delays[:5] == [0.2, 0.4, 0.8, 1.6, 3.2]
    assert 25 <= sum(delays) <= 35


# --- local test mode -----------------------------------------------------------------------


def _local(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "RUNPOD_LOG_LEVEL": "INFO"}
    return subprocess.run(
        [sys.executable, str(HANDLERS / script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=cwd,
    )


@pytest.mark.timeout(60)
def test_local_echo_prints_the_result() -> None:
    proc = _local("native_echo.py", "--test_input", '{"input": {"x": 1}}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"output": {"echo": {"x": 1}}}


@pytest.mark.timeout(60)
def test_local_generator_is_iterated() -> None:
    proc = _local("native_stream.py", '--test_input={"input": {"n": 2}}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"output": [{"i": 0}, {"i": 1}]}


@pytest.mark.timeout(60)
def test_local_reads_test_input_json(tmp_path: Path) -> None:
    (tmp_path / "test_input.json").write_text('{"input": "hi", "id": "mine"}')
    proc = _local("native_echo.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"output": {"echo": "hi"}}
    assert "mine" in proc.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("script", "args"),
    [
        pytest.param("native_echo.py", ["--test_input", '{"x": 1}'], id="no input key"),
        pytest.param("native_echo.py", ["--test_input", "{not json"], id="input not JSON"),
        pytest.param("native_echo.py", [], id="no test_input.json"),
        pytest.param("native_fail.py", ["--test_input", '{"input": {}}'], id="handler raised"),
    ],
)
def test_local_failures_exit_1(script: str, args: list[str], tmp_path: Path) -> None:
    proc = _local(script, *args, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr


@pytest.mark.timeout(60)
def test_local_failure_prints_the_error_report() -> None:
    proc = _local("native_fail.py", "--test_input", '{"input": {}}')
    report = json.loads(json.loads(proc.stdout)["error"])
    assert report["error_message"] == "boom"
