"""The OpenAI-compatible route through a live `runq serve`, with the official `openai` package as
the client and an unmodified runpod-SDK worker written to RunPod's vLLM contract
(tests/handlers/runpod_openai.py): models, chat and text completions with and without
streaming, and every way a request can fail."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import Server, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    live = Server(root=tmp_path_factory.mktemp("openai-route"), port=free_port())
    live.add_endpoint("llm", "runpod_openai.py")
    live.start()
    try:
        yield live
    finally:
        live.stop()


Connect = Callable[..., openai.OpenAI]


@pytest.fixture
def connect(server: Server) -> Iterator[Connect]:
    """`connect(key=None, endpoint="llm")`: an openai client on the route, closed after the test."""
    made: list[openai.OpenAI] = []

    def make(key: str | None = None, endpoint: str = "llm") -> openai.OpenAI:
        client = openai.OpenAI(
            base_url=f"{server.url}/v2/{endpoint}/openai/v1",
            api_key=key or server.key,
            max_retries=0,  # the client retries 5xx by default: each retry would be a new job
            timeout=30,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello from runq"}]


def test_models_list_names_the_workers_models(connect: Connect) -> None:
    assert [model.id for model in connect().models.list()] == ["echo"]


def test_a_chat_completion_is_the_workers_response_and_a_job_like_any_other(
    server: Server, connect: Connect
) -> None:
    completion = connect().chat.completions.create(model="echo", messages=HELLO)
    assert completion.choices[0].message.content == "hello from runq "
    assert completion.choices[0].finish_reason == "stop"
    job_id = completion._request_id  # runq's job id, from the x-request-id header
    assert job_id is not None
    assert server.status("llm", job_id)["status"] == "COMPLETED"


def test_a_streamed_chat_completion_arrives_word_by_word(connect: Connect) -> None:
    stream = connect().chat.completions.create(model="echo", messages=HELLO, stream=True)
    words = [chunk.choices[0].delta.content for chunk in stream]
    assert words == ["hello ", "from ", "runq "]


def test_a_text_completion_with_and_without_streaming(connect: Connect) -> None:
    client = connect()
    whole = client.completions.create(model="echo", prompt="one two three")
    assert whole.choices[0].text == "one two three "
    streamed = client.completions.create(model="echo", prompt="one two three", stream=True)
    assert [chunk.choices[0].text for chunk in streamed] == ["one ", "two ", "three "]


def test_a_wrong_key_is_an_authentication_error(connect: Connect) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        connect(key="not-the-key").models.list()
    assert caught.value.status_code == 401
    assert "API key" in caught.value.message


def test_a_key_scoped_to_another_endpoint_is_refused_and_one_scoped_to_this_one_works(
    server: Server, connect: Connect
) -> None:
    def scoped(endpoint: str) -> str:
        reply = server.post(
            "/admin/keys", json={"name": endpoint, "scopes": [f"invoke:{endpoint}"]}
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["key"])

    with pytest.raises(openai.PermissionDeniedError) as caught:
        connect(key=scoped("other")).models.list()
    assert "may not invoke endpoint 'llm'" in caught.value.message
    assert [model.id for model in connect(key=scoped("llm")).models.list()] == ["echo"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_workers_error_object_answers_with_its_code(connect: Connect, stream: bool) -> None:
    client = connect()
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model="error-422", messages=HELLO, stream=stream)
    assert caught.value.body == {
        "message": "max_tokens is too large",
        "type": "BadRequest",
        "code": 422,
    }
    with pytest.raises(openai.NotFoundError) as flat:
        client.chat.completions.create(model="flat-error", messages=HELLO, stream=stream)
    assert flat.value.status_code == 404 and flat.value.message.endswith("no such model")


def test_a_failed_job_answers_500_naming_the_job(server: Server, connect: Connect) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        connect().chat.completions.create(model="crash", messages=HELLO)
    job_id = caught.value.response.headers["x-request-id"]
    assert caught.value.status_code == 500
    assert f"job {job_id} failed" in caught.value.message
    assert "the model crashed" in caught.value.message
    assert server.status("llm", job_id)["status"] == "FAILED"


def test_a_job_not_done_within_wait_answers_504_and_is_cancelled(
    server: Server, connect: Connect
) -> None:
    client = connect().with_options(default_query={"wait": 1000})
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="slow", messages=HELLO)
    job_id = caught.value.response.headers["x-request-id"]
    assert caught.value.status_code == 504
    assert f"job {job_id} did not finish within 1 s" in caught.value.message
    assert server.status("llm", job_id)["status"] == "CANCELLED"


def test_a_client_that_gives_up_waiting_cancels_its_job(server: Server, connect: Connect) -> None:
    client = connect().with_options(timeout=1.5)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="slow", messages=HELLO)

    # The job would run for 60 s: cancelled, nothing is left queued or running within seconds.
    def idle() -> bool:
        jobs = server.health("llm")["jobs"]
        return bool(jobs["inQueue"] == jobs["inProgress"] == 0)

    wait_until(idle, timeout=10)


def test_a_client_that_leaves_a_stream_cancels_its_job(server: Server, connect: Connect) -> None:
    stream = connect().chat.completions.create(model="slow-stream", messages=HELLO, stream=True)
    job_id = stream.response.headers["x-request-id"]
    assert next(iter(stream)).choices[0].delta.content == "hello "
    stream.close()
    wait_until(lambda: server.status("llm", job_id)["status"] == "CANCELLED", timeout=10)


def test_a_job_that_fails_mid_stream_ends_the_stream_with_an_error(connect: Connect) -> None:
    stream = connect().chat.completions.create(
        model="crash-mid-stream", messages=HELLO, stream=True
    )
    job_id = stream.response.headers["x-request-id"]
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["hello "]
    assert f"job {job_id} failed" in caught.value.message


def test_a_body_that_is_not_an_object_is_a_400_naming_it(server: Server) -> None:
    response = server.post("/v2/llm/openai/v1/chat/completions", json=[1, 2])
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the body must be a JSON object, got list"


def test_an_endpoint_that_is_not_deployed_is_a_404(connect: Connect) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        connect(endpoint="nope").models.list()
    assert caught.value.message.endswith("endpoint 'nope' is not deployed")
