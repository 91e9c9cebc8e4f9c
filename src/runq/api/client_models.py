"""The client request body, validated with pydantic; its schema feeds the OpenAPI docs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runq.core.job import JobRequest
from runq.core.spec import EndpointSpec
from runq.errors import BadRequest

_DAY_MS = 86_400_000
MAX_POLICY_MS = 7 * _DAY_MS


class Policy(BaseModel):
    model_config = ConfigDict(extra="allow")

    # Strict: pydantic's lax mode would read "yes" and "1" as true and "10000" as a number,
    # where a RunPod client that sends them has a bug worth a 400 naming the field.
    executionTimeout: int | None = Field(
        None,
        ge=5_000,
        le=MAX_POLICY_MS,
        strict=True,
        description="ms; max run time once picked up",
    )
    ttl: int | None = Field(
        None, ge=10_000, le=MAX_POLICY_MS, strict=True, description="ms; lifetime from submission"
    )
    lowPriority: bool = Field(
        False, strict=True, description="true: the job does not trigger scale-up"
    )


class RunRequest(BaseModel):
    """POST /run and /runsync body (spec 1.4.1)."""

    model_config = ConfigDict(extra="allow")

    input: Any = Field(..., description="passed to the handler as job['input']")
    webhook: str | None = Field(None, description="URL POSTed when the job completes or fails")
    webhookV2: str | None = None
    policy: Policy | None = None
    s3Config: dict[str, Any] | None = None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        if item["type"] == "missing" and location == "input":
            parts.append("the body needs an 'input' field (the handler's job['input'])")
        else:
            parts.append(f"field '{location}': {item['msg']}")
    return "; ".join(parts)


def parse_run_request(
    body: Any, spec: EndpointSpec, sync: bool, ttl_override_ms: int | None
) -> JobRequest:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with an 'input' field")
    try:
        request = RunRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(_describe(exc)) from None
    for url in (request.webhook, request.webhookV2):
        if url is not None and not url.startswith(("http://", "https://")):
            raise BadRequest(f"field 'webhook': expected an http(s) URL, got {url!r}")
    policy = request.policy or Policy.model_validate({})
    execution_timeout_s = spec.jobs.execution_timeout_s
    if policy.executionTimeout is not None:
        execution_timeout_s = policy.executionTimeout / 1000
    ttl_s = spec.jobs.ttl_s
    if policy.ttl is not None:
        ttl_s = policy.ttl / 1000
    if ttl_override_ms is not None:
        if not 10_000 <= ttl_override_ms <= MAX_POLICY_MS:
            raise BadRequest(f"query 'ttl': must be 10000..{MAX_POLICY_MS} ms")
        ttl_s = ttl_override_ms / 1000
    return JobRequest(
        endpoint=spec.name,
        input=request.input,
        webhook=request.webhook or request.webhookV2,
        s3_config=request.s3Config,
        low_priority=policy.lowPriority,
        execution_timeout_s=execution_timeout_s,
        ttl_s=ttl_s,
        sync=sync,
    )


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` inlined, for an OpenAPI `requestBody`."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.split("/")[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
