"""The JSON API's contract: every operation's request and response shapes, declared once as pydantic
models, validating requests and generating the OpenAPI 3.1 document served at /openapi.json.

Adding an endpoint is one registration:

    @operation(bp, "POST", "/webhooks", role=Role.ADMIN, body=WebhookIn,
               responses={201: WebhookOut}, summary="Register a webhook")
    def webhook_create(body: WebhookIn): ...

`operation` routes the view, authenticates the bearer token with `role` (and its rate limits),
validates the query (`query=`) and JSON body (`body=`) with the models (a 400 in the API's error
format `{"error", "message", "fields"}` otherwise), passes the parsed models to the view as `query`
and `body`, and records the operation for the document. Services keep the rules a schema cannot
say (a known queue, min <= max, the role caps) with their own messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Annotated, Any, Literal

from flask import Blueprint, jsonify, request
from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from webapp.api.auth import api_error, require_role
from webapp.catalog import PRIORITIES, QUALITIES, QUEUES, Role, TaskStatus
from webapp.services import validation as rules
from webapp.services.assets import KINDS as ASSET_KINDS
from webapp.services.assets import MAX_TAG, MAX_TAGS
from webapp.services.assets import PAGE_MAX as ASSET_PAGE_MAX
from webapp.services.batches import MAX_BRIEFS, MODES
from webapp.services.webhooks import DEFAULT_EVENTS, EVENTS

# --- shapes ------------------------------------------------------------------------------------


class Strict(BaseModel):
    """A request shape: unknown fields are refused, JSON types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Shape(BaseModel):
    """A response shape: the listed fields are always there; more may be added later."""

    model_config = ConfigDict(extra="allow")


def one_of(values: Any, description: str = "") -> dict[str, Any]:
    """Schema extras that declare an enum a service checks with its own error (e.g. unknown_action)."""
    return {"json_schema_extra": {"enum": list(values)}, "description": description}


class Query(BaseModel):
    """Query parameters: text, so "20" is the number 20; unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore")


class ErrorOut(Shape):
    error: str = Field(description="a stable code: invalid_request, not_found, rate_limited, ...")
    message: str
    fields: dict[str, str] = Field(description="each bad field and what is wrong with it")


class BriefConfigIn(Strict):
    quality: Literal[tuple(QUALITIES)] = rules.DEFAULT_QUALITY  # type: ignore[valid-type]
    resolution: str = Field(rules.DEFAULT_RESOLUTION, pattern=r"^[0-9]{2,5}x[0-9]{2,5}$",
                            description=f"WIDTHxHEIGHT, even sides, {rules.MIN_SIDE}-{rules.MAX_WIDTH} by "
                                        f"{rules.MIN_SIDE}-{rules.MAX_HEIGHT}, capped by the role")
    seed: int | None = Field(None, ge=0, lt=2**31)
    # The brief's own material and style (docs/media-library.md); their rules and messages live in
    # webapp/services/brief_ext.py, so here they are declared by shape only.
    assets: list[str] | None = Field(None, description="asset ids used as scene visuals, in order")
    script: list[dict[str, Any]] | None = Field(None, description="per scene: narration and caption")
    fit: Literal["exact", "narration"] | None = None
    voice: dict[str, Any] | None = Field(None, description='{"name": "cmn", "speed": 160}')
    music: dict[str, Any] | None = Field(None, description='{"asset": id, "volume": 0.3} or the built-in bed')
    logo: dict[str, Any] | None = Field(None, description='{"asset": id, "corner": "top-right"}')
    subtitles: dict[str, Any] | None = Field(None, description="burn, size, color, outline, position")
    brand: dict[str, Any] | None = Field(None, description='{"font": id, "colors": ["#0A84FF"]}')
    variants: int | None = Field(None, ge=1, le=5, description="versions as child tasks of this one")
    preview: bool | None = None


Keyword = Annotated[str, Field(min_length=1, max_length=rules.MAX_KEYWORD)]


class BriefIn(Strict):
    theme_id: str = Field(min_length=1, max_length=rules.MAX_THEME)
    keywords_id: list[Keyword] = Field(min_length=1, max_length=rules.MAX_KEYWORDS)
    target_duration_id: int = Field(ge=rules.MIN_DURATION, le=rules.MAX_DURATION,
                                    description="seconds; capped by the role")
    user_description_id: str | None = Field("", max_length=rules.MAX_DESCRIPTION)
    priority: Literal[tuple(PRIORITIES)] = "normal"  # type: ignore[valid-type]
    config: BriefConfigIn | None = None
    callback_url: str | None = Field(None, max_length=2048,
                                     description="this task's webhook target: must have the origin of an enabled "
                                                 "registered endpoint, whose secret signs it")


class SubmitOut(Shape):
    task_id: str
    status: str
    priority: str
    estimated_duration: int | float | None
    message: str
    timestamp: str
    variants: list[str] | None = None


class PreviewOut(Shape):
    task_id: str
    status: str
    priority: str
    resolution: str
    preview_seconds: int | float
    estimated_duration: int | float | None
    timestamp: str


class FileOut(Shape):
    kind: str
    name: str
    url: str


class ResultOut(Shape):
    files: list[FileOut] = []


class StatusOut(Shape):
    task_id: str
    status: Literal[tuple(s.value for s in TaskStatus)]  # type: ignore[valid-type]
    priority: str
    progress: float
    message: str
    created_at: str | None
    updated_at: str | None
    estimated_duration: int | float | None
    actual_duration: float | None
    result: dict[str, Any] | None
    error: str | None
    error_detail: dict[str, Any] | None = Field(description="type, message, stage; the traceback for admins")
    queue: str
    stage: str | None
    attempt: int
    eta_seconds: int | float | None
    started_at: str | None
    finished_at: str | None
    cancel_requested: bool
    parent_id: str | None
    request: dict[str, Any]


class EventOut(Shape):
    at: str | None
    kind: str
    status: str | None
    message: str | None
    data: dict[str, Any] | None


class EventsOut(Shape):
    task_id: str
    events: list[EventOut]


class CancelOut(Shape):
    task_id: str
    status: str
    cancel_requested: bool
    message: str


class QueueOut(Shape):
    name: str
    priority: int
    length: int | None
    worker_count: int
    oldest_waiting_seconds: float | None


class QueueStatusOut(Shape):
    broker: Literal["up", "down"]
    queues: list[QueueOut]
    generated_at: float


class SummaryOut(Shape):
    task_id: str
    status: str
    priority: str
    queue: str
    theme: str
    progress: float
    created_at: str | None
    finished_at: str | None


class HistoryOut(Shape):
    tasks: list[SummaryOut]
    count: int
    limit: int
    next_cursor: str | None


class HistoryArgs(Query):
    limit: int = Field(20, ge=1, le=200)
    status: str | None = Field(None, max_length=400, description="one or several, comma-separated: "
                               + ", ".join(s.value for s in TaskStatus))
    priority: str | None = Field(None, max_length=200, description=", ".join(PRIORITIES))
    queue: str | None = Field(None, max_length=400, description=", ".join(QUEUES))
    since: str | None = Field(None, max_length=64, description="ISO 8601 date or time")
    until: str | None = Field(None, max_length=64, description="ISO 8601 date or time (a date: that whole day)")
    q: str | None = Field(None, max_length=200, description="text in theme or description, or a task id")
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")


class WorkersArgs(Query):
    ping: Literal["0", "1", "true", "false"] | None = None


class LimitArgs(Query):
    limit: int = Field(50, ge=1, le=500)


class DecisionArgs(LimitArgs):
    queue: str | None = Field(None, max_length=64)


class AutoscaleArgs(Query):
    """Checked by the autoscale service, which audits a refused target like any other."""

    queue: str | None = Field(None, max_length=64)
    target_workers: Annotated[str | None, WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 64})] = None


class PoolOut(Shape):
    worker_id: str
    queues: list[str]
    concurrency: int
    desired_count: int
    running: bool
    paused: bool


class FleetOut(Shape):
    pools: list[PoolOut]
    workers: list[dict[str, Any]]
    supervisors: list[dict[str, Any]]
    online: int
    offline: int
    generated_at: str | None


class ControlIn(Strict):
    worker_id: str = Field(max_length=64, description="a worker (pool) name: letters, digits, _ and -")
    action: str = Field(max_length=16, **one_of(("start", "stop", "restart", "pause", "resume", "resize")))
    queue: str | list[str] | None = Field(None, description="start: the queue or queues it serves")
    concurrency: int | None = Field(None, ge=1, le=32, description="pool processes (WORKER_MAX_CONCURRENCY)")
    max_memory_mb: int | None = Field(None, ge=64, le=65536)
    max_tasks_per_child: int | None = Field(None, ge=1)
    host: str | None = Field(None, max_length=128)
    count: int | None = Field(None, ge=1, le=64)


class ControlOut(Shape):
    worker_id: str
    action: str
    accepted: bool
    message: str
    desired: PoolOut


class AutoscaleIn(Strict):
    queue: str = Field(max_length=64, **one_of(QUEUES))
    target_workers: int = Field(ge=0, le=64)


class AutoscaleOut(Shape):
    queue: str
    target_workers: int
    current_workers: int
    start: list[str]
    stop: list[str]
    message: str


class PolicyIn(Strict):
    queue: str = Field(max_length=64, **one_of(QUEUES))
    enabled: bool = True
    min_workers: int | None = Field(None, ge=0, le=64)
    max_workers: int | None = Field(None, ge=0, le=64)
    target_backlog_per_worker: int | None = Field(None, ge=1)
    max_wait_seconds: int | None = Field(None, ge=0)
    cooldown_seconds: int | None = Field(None, ge=0)
    allow_zero: bool = False


class PolicyOut(Shape):
    queue: str
    enabled: bool
    min_workers: int
    max_workers: int
    target_backlog_per_worker: int
    max_wait_seconds: int | None
    cooldown_seconds: int
    allow_zero: bool
    last_scaled_at: str | None
    updated_by: str | None


class PoliciesOut(Shape):
    policies: list[PolicyOut]


class PolicyDeletedOut(Shape):
    queue: str
    deleted: bool


class DecisionOut(Shape):
    at: str | None
    queue: str
    source: str
    action: str
    current: int | None
    desired: int | None
    reason: str | None


class DecisionsOut(Shape):
    decisions: list[DecisionOut]


class AuditOut(Shape):
    at: str | None
    actor: str | None
    action: str | None
    target: str | None
    params: Any
    status_code: int | None
    message: str | None


class AuditListOut(Shape):
    entries: list[AuditOut]


class HealthOut(Shape):
    status: Literal["ok", "fail"]
    checks: dict[str, str] | None = None


def absent(**kwargs: Any) -> Any:
    """An optional field that may not be null: None (not in the schema) when the body leaves it out."""
    return Field(None, json_schema_extra=lambda schema: schema.pop("default", None), **kwargs)


EventName = Annotated[str, Field(max_length=64, **one_of(EVENTS))]


class WebhookIn(Strict):
    """Checked further by the webhooks service: an http(s) URL to a public address (SSRF), known events."""

    url: str = Field(max_length=2000, description="http(s) URL; private and loopback addresses are refused "
                                                  "unless WEBHOOK_ALLOWED_HOSTS names them")
    events: list[EventName] = Field(default_factory=lambda: list(DEFAULT_EVENTS), min_length=1,
                                    description="the events to send")
    description: str = Field("", max_length=500)


class WebhookPatchIn(Strict):
    """Only the fields sent change (none of them may be null)."""

    url: str = absent(max_length=2000)
    events: list[EventName] = absent(min_length=1)
    description: str = absent(max_length=500)
    enabled: bool = absent(description="re-enabling clears the failure record")


class WebhookOut(Shape):
    id: str
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: str | None
    secret_rotating_until: str | None
    created_by: str | None
    created_at: str | None
    updated_at: str | None


class WebhookSecretOut(WebhookOut):
    secret: str = Field(description="whsec_<base64>: shown only in this answer")


class WebhooksOut(Shape):
    webhooks: list[WebhookOut]


class DeliveryOut(Shape):
    id: str = Field(description="the webhook-id header, the same across retries")
    endpoint_id: str
    url: str
    event: str
    task_id: str | None
    status: str
    attempts: int
    response_code: int | None
    latency_ms: float | None
    last_error: str | None
    created_at: str | None
    last_attempt_at: str | None
    next_attempt_at: str | None
    delivered_at: str | None


class DeliveriesArgs(Query):
    limit: int = Field(100, ge=1, le=500)


class DeliveriesOut(Shape):
    endpoint_id: str
    deliveries: list[DeliveryOut]


class RedeliverOut(Shape):
    id: str
    status: Literal["pending"]


class BatchIn(Strict):
    briefs: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BRIEFS,
                                         description="submit bodies (see BriefIn), each checked on its own")
    mode: str = Field("all_or_nothing", max_length=32, **one_of(
        MODES, "all_or_nothing: any invalid brief refuses the batch; each: the valid ones are accepted"))


class BriefErrorOut(Shape):
    index: int
    message: str
    fields: dict[str, str]


class BatchErrorOut(ErrorOut):
    errors: list[BriefErrorOut] = Field([], description="the invalid briefs, by index")


class BatchTaskOut(Shape):
    index: int
    task_id: str
    status: str
    priority: str
    estimated_duration: int | float | None


class BatchOut(Shape):
    batch_id: str
    mode: str
    count: int
    tasks: list[BatchTaskOut]
    errors: list[BriefErrorOut]
    timestamp: str


class BatchTaskStateOut(Shape):
    index: int
    task_id: str
    status: str
    progress: float
    message: str | None


class BatchProgressOut(Shape):
    batch_id: str
    mode: str
    count: int
    created_at: str | None
    submitted_by: str | None
    counts: dict[str, int]
    finished: int
    done: bool
    progress: float
    tasks: list[BatchTaskStateOut]


class AssetOut(Shape):
    id: str
    kind: str
    name: str
    owner: str
    size: int
    duration: float | None
    width: int | None
    height: int | None
    codec: str | None
    tags: list[str]
    shared: bool
    created_at: str | None
    probe: dict[str, Any]
    proxy: Literal["wanted", "ready", "failed"] | None = Field(
        description="a heavy clip's light copy for renders (larger than 1920x1080, faster than 30 fps or "
                    "HDR): wanted (being made), ready (renders up to 1920x1080 read it), failed (they read "
                    "the original); null when none is needed")
    url: str = Field(description="/assets/{id}/file")
    thumbnail_url: str | None


class AssetDetailOut(AssetOut):
    used_by: list[str] = Field(description="waiting or running tasks whose brief uses the asset")


class AssetsOut(Shape):
    assets: list[AssetOut]
    count: int
    total: int
    next_offset: int | None


class AssetDeletedOut(Shape):
    id: str
    deleted: bool


def as_integer(minimum: int, maximum: int | None = None) -> Any:
    """A query number the service checks with its own message: text here, an integer in the document."""
    schema = {"type": "integer", "minimum": minimum, **({"maximum": maximum} if maximum is not None else {})}
    return Annotated[str | None, WithJsonSchema(schema)]


class AssetsArgs(Query):
    """Checked by the assets service, whose messages name each bad filter."""

    kind: str | None = Field(None, max_length=16, **one_of(ASSET_KINDS))
    tag: str | None = Field(None, max_length=200)
    q: str | None = Field(None, max_length=200, description="text in the file name or the tags")
    text: str | None = Field(None, max_length=200, description="the same as q")
    limit: as_integer(1, ASSET_PAGE_MAX) = None  # type: ignore[valid-type]
    offset: as_integer(0) = None  # type: ignore[valid-type]


class AssetUploadForm(BaseModel):
    """The multipart/form-data upload, declared by shape only: the assets service checks the file and
    the fields, with messages naming them (a kind is matched case-insensitively, so no enum here)."""

    file: Annotated[bytes, WithJsonSchema({"type": "string", "format": "binary"})] = Field(
        description="an image, clip, audio file, PNG logo or font (ASSET_MAX_BYTES at most)")
    tags: str = absent(description=f"comma-separated, at most {MAX_TAGS} of {MAX_TAG} characters")
    shared: str = absent(description="1, true, yes or on: every user sees it")
    kind: str = absent(description="instead of the kind the file's type gives: " + ", ".join(ASSET_KINDS))
    text: str = absent(description="a font's texts, checked for missing glyphs")


class Binary:
    """A response that is the file's bytes, of its own media type."""


# --- the registry --------------------------------------------------------------------------------

#: Error answers every authenticated operation may give.
AUTH_ERRORS = {401: ErrorOut, 403: ErrorOut, 429: ErrorOut}


@dataclass
class Operation:
    method: str
    path: str  # OpenAPI form: /tasks/status/{task_id}
    summary: str
    role: Role | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: dict[int, type[BaseModel] | type[Binary] | None]
    headers: dict[str, str] = field(default_factory=dict)
    form: type[BaseModel] | None = None
    body_optional: bool = False
    max_body: int | None = None
    endpoint: str = ""


OPERATIONS: list[Operation] = []


def _openapi_path(rule: str) -> str:
    """/status/<task_id> -> /status/{task_id}; <int:id> -> {id}."""
    import re

    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def model_errors(exc: ValidationError) -> dict[str, str]:
    """pydantic's errors as the API's `fields`: top field (and config.<name>) -> message."""
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        names = [str(p) for p in error["loc"] if isinstance(p, str)]
        key = ".".join(names[:2]) if names[:1] == ["config"] else (names[0] if names else "body")
        message = _("Unknown field.") if error["type"] == "extra_forbidden" else error["msg"]
        fields.setdefault(key, message)
    return fields


def operation(bp: Blueprint, method: str, rule: str, *, role: Role | None, summary: str,
              responses: dict[int, type[BaseModel] | type[Binary] | None], body: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, headers: dict[str, str] | None = None,
              body_errors: Callable[[Any], dict[str, str] | None] | None = None,
              body_optional: bool = False, max_body: int | None = None,
              form: type[BaseModel] | None = None, guard: Callable[[Role], Callable] | None = None) -> Callable:
    """Route, authenticate, validate and declare one JSON operation (see the module docstring).

    `body_errors(raw_body)`, when given, is asked first for the fields and messages of a body the
    model refuses (the brief's translated messages); the model's own errors fill in the rest.
    A response declared as None has no body (204), as Binary the bytes of a file. `max_body` raises
    the 64 KB body limit. `form` declares a multipart/form-data body that the view reads itself.
    `guard(role)`, when given, authenticates instead of the bearer-only `require_role`."""
    entry = Operation(method=method.upper(), path=_openapi_path((bp.url_prefix or "") + rule), summary=summary,
                      role=role, body=body, query=query, responses=responses, headers=headers or {},
                      body_optional=body_optional, max_body=max_body, form=form)
    OPERATIONS.append(entry)

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def validated(*args: Any, **kwargs: Any):
            if query is not None:
                try:
                    kwargs["query"] = query.model_validate(
                        {k: v for k, v in request.args.items()} | _repeated(query))
                except ValidationError as exc:
                    return api_error(400, "invalid_request", _("Invalid query parameters."), model_errors(exc))
            if body is not None and body_optional and not request.get_data(cache=True).strip():
                kwargs["body"] = kwargs["raw_body"] = None
            elif body is not None:
                from webapp.api.views import read_json_body
                from webapp.services.validation import BriefError

                if max_body is not None:
                    request.max_content_length = max_body
                try:
                    raw = read_json_body(max_body)
                except BriefError as exc:
                    return api_error(400, "invalid_request", exc.message, exc.fields)
                try:
                    kwargs["body"] = body.model_validate(raw)
                except ValidationError as exc:
                    fields = model_errors(exc)
                    own = body_errors(raw) if body_errors else None
                    return api_error(400, "invalid_request", _("The request has invalid fields."),
                                     {**fields, **(own or {})})
                kwargs["raw_body"] = raw
            return view(*args, **kwargs)

        guarded = (guard or require_role)(role)(validated) if role is not None else validated
        bp.add_url_rule(rule, view.__name__, guarded, methods=[entry.method])
        entry.endpoint = f"{bp.name}.{view.__name__}"
        return guarded

    return decorator


def _repeated(model: type[BaseModel]) -> dict[str, str]:
    """Repeated list parameters (?status=a&status=b) joined with commas, as the services read them."""
    joined = {}
    for name in model.model_fields:
        values = request.args.getlist(name)
        if len(values) > 1:
            joined[name] = ",".join(values[:50])
    return joined


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every registered operation."""
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel], mode: str) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        item: dict[str, Any] = {"summary": op.summary, "operationId": op.endpoint.replace(".", "_"),
                                "tags": [op.path.split("/")[2] if op.path.startswith("/tasks/workers") else
                                         op.path.split("/")[1]]}
        parameters = []
        for name in _path_names(op.path):
            parameters.append({"name": name, "in": "path", "required": True,
                               "schema": {"type": "string", "maxLength": 64}})
        if op.query is not None:
            for name, info in op.query.model_json_schema()["properties"].items():
                schema = {k: v for k, v in info.items() if k not in ("title", "default", "description")}
                # A query parameter is never null: keep the non-null branch of an Optional.
                branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
                if branches:
                    schema.update(branches[0])
                parameters.append({"name": name, "in": "query", "required": False, "schema": schema,
                                   **({"description": info["description"]} if "description" in info else {})})
        for name, text in op.headers.items():
            parameters.append({"name": name, "in": "header", "required": False, "description": text,
                               "schema": {"type": "string", "maxLength": 128, "pattern": "^[!-~]*$"}})
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            item["requestBody"] = {"required": not op.body_optional,
                                   "content": {"application/json": {"schema": ref(op.body, "validation")}}}
        if op.form is not None:
            item["requestBody"] = {"required": True,
                                   "content": {"multipart/form-data": {"schema": ref(op.form, "validation")}}}
        answers = dict(op.responses)
        if op.role is not None:
            answers = {**AUTH_ERRORS, **answers}
            item["security"] = [{"bearer": []}]
            item["description"] = f"Needs a token with the {op.role.value} role (or higher)."
        if op.body is not None or op.query is not None:
            answers.setdefault(400, ErrorOut)
        if op.body is not None or op.form is not None:
            answers.setdefault(400, ErrorOut)
            answers.setdefault(413, ErrorOut)
        item["responses"] = {
            str(code): {"description": _STATUS_TEXT.get(code, "answer") if code != 413 or not (op.max_body or op.form)
                        else "file larger than ASSET_MAX_BYTES" if op.form
                        else f"body larger than {op.max_body // (1024 * 1024)} MB",
                        **_content(model, ref),
                        **({"headers": {"Retry-After": {"schema": {"type": "string"}}}} if code == 429 else {}),
                        **({"headers": {"Location": {"schema": {"type": "string"}}}} if code == 302 else {})}
            for code, model in sorted(answers.items())
        }
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "Aura Render API", "version": "1",
                 "description": "Submit video briefs and batches, follow tasks, run the worker fleet and "
                                "manage webhooks and the media library. Every operation under /tasks, /webhooks and "
                                "/assets needs `Authorization: Bearer <token>` (/assets also takes a signed-in "
                                "session with an X-CSRFToken header); errors are "
                                "`{\"error\", \"message\", \"fields\"}`."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _content(model: Any, ref: Callable) -> dict[str, Any]:
    if model is None:
        return {}
    if model is Binary:
        return {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
    return {"content": {"application/json": {"schema": ref(model, "serialization")}}}


def _path_names(path: str) -> list[str]:
    import re

    return re.findall(r"{([a-z_]+)}", path)


_STATUS_TEXT = {200: "OK", 201: "created", 302: "found elsewhere: a presigned storage URL", 202: "accepted", 204: "done, no body", 400: "invalid request", 401: "no valid token",
                403: "the token's role is too low", 404: "not found", 409: "conflict",
                413: "body larger than 64 KB", 429: "too many requests (see Retry-After)",
                503: "not ready"}


def json_response(model_body: dict[str, Any], status: int = 200):
    response = jsonify(model_body)
    response.status_code = status
    return response
