"""Records for web applications (SPEC §7.6): to_dict/to_json/from_dict, http_status, and
the frameworks' own encoders (pydantic's TypeAdapter, FastAPI's responses)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from datacon import (
    Conversation,
    ConversationItem,
    ConversationPage,
    ItemPage,
    ListParams,
    NewConversation,
    NewConversationItem,
    ResponseChain,
    SortOrder,
    StoredResponse,
)
from datacon.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    DataconError,
    HookRejectedError,
    InvalidChainError,
    InvalidInputError,
    MigrationRequiredError,
    PoolTimeoutError,
    http_status,
)
from datacon.models import JsonRecord, Link

WHEN = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
CONV = Conversation(id="conv_1", created_at=WHEN, metadata={"title": "t"})
ITEM = ConversationItem(
    id="msg_1", response_id=None, item_type="message", role="user", content=[{"t": 1}], status=None, created_at=WHEN
)
RESP = StoredResponse(id="01J0000000000000000000000A", input=[], created_at=WHEN, model="m", raw_response={"x": 1})

MODELS: list[Any] = [
    CONV,
    ITEM,
    RESP,
    NewConversation(id=None, metadata={"a": [1]}),
    NewConversationItem(item_type="message", content="hi", role="user"),
    ResponseChain(responses=[RESP], metadata={}),
    ListParams(limit=10, order=SortOrder.DESC, after="msg_1"),
    # SPEC §7.6: the pages too (their items and conversations nested as their own to_dict()).
    ItemPage(data=[ITEM], first_id="msg_1", last_id="msg_1", has_more=True, next_cursor="c" * 80),
    ItemPage(),
    ConversationPage(data=[CONV], first_id="conv_1", last_id="conv_1", has_more=False, next_cursor=None),
    Link("conv_1", "msg_1", WHEN),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_to_dict_is_json_compatible_and_from_dict_round_trips(model: Any) -> None:
    data = model.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON values only
    assert json.loads(model.to_json()) == data
    assert type(model).from_dict(data) == model
    assert type(model).from_dict(json.loads(model.to_json())) == model


def test_pages_nest_their_records_and_refuse_naive_datetimes() -> None:
    page = ItemPage(data=[ITEM], first_id="msg_1", last_id="msg_1", has_more=True, next_cursor="cursor")
    assert page.to_dict() == {
        "data": [ITEM.to_dict()],
        "first_id": "msg_1",
        "last_id": "msg_1",
        "has_more": True,
        "next_cursor": "cursor",
    }
    assert ConversationPage(data=[CONV]).to_dict()["data"] == [CONV.to_dict()]
    with pytest.raises(InvalidInputError, match=r"data\[0\]\.created_at.*naive"):
        ItemPage.from_dict({"data": [{**ITEM.to_dict(), "created_at": "2026-01-02T03:04:05"}]})
    with pytest.raises(InvalidInputError, match=r"data\[0\]\.created_at.*naive"):
        ConversationPage.from_dict({"data": [{"id": "c", "created_at": "2026-01-02T03:04:05"}]})


def test_datetimes_are_utc_with_six_fractional_digits_and_z() -> None:
    assert CONV.to_dict() == {"id": "conv_1", "created_at": "2026-01-02T03:04:05.000006Z", "metadata": {"title": "t"}}
    other = Conversation(id="c", created_at=datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))))
    assert other.to_dict()["created_at"] == "2026-01-02T03:04:05.000000Z"
    assert ListParams(limit=1).to_dict() == {"limit": 1, "order": "asc", "after": None}


def test_from_dict_accepts_any_offset_and_converts_to_utc() -> None:
    for text in ("2026-01-02T05:04:05.000006+02:00", "2026-01-01T22:04:05.000006-05:00", "2026-01-02T03:04:05.000006Z"):
        got = Conversation.from_dict({"id": "conv_1", "created_at": text, "metadata": {"title": "t"}})
        assert got == CONV
        assert got.created_at.tzinfo is UTC
    aware = Conversation.from_dict({"id": "conv_1", "created_at": WHEN.astimezone(timezone(timedelta(hours=-3)))})
    assert aware.created_at == WHEN
    assert aware.created_at.tzinfo is UTC


@pytest.mark.parametrize("value", ["2026-01-02T03:04:05.000006", datetime(2026, 1, 2, 3, 4, 5)], ids=["text", "object"])
def test_from_dict_refuses_a_naive_datetime_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidInputError, match=r"created_at.*naive"):
        Conversation.from_dict({"id": "conv_1", "created_at": value})
    with pytest.raises(InvalidInputError, match="created_at"):
        StoredResponse.from_dict({**RESP.to_dict(), "created_at": value})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"created_at": "2026-01-02T03:04:05Z"}, "id"),  # missing
        ({"id": "c", "created_at": "2026-01-02T03:04:05Z", "colour": 1}, "colour"),  # unknown
        ({"id": "c", "created_at": "yesterday"}, "created_at"),  # not ISO-8601
    ],
)
def test_from_dict_refuses_missing_unknown_and_malformed_fields(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError, match=field):
        Conversation.from_dict(data)


def test_from_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(InvalidInputError, match="mapping"):
        Conversation.from_dict([("id", "c")])  # type: ignore[arg-type]


def test_http_status_maps_every_error_class() -> None:
    assert http_status(InvalidInputError("x")) == 400
    assert http_status(ConfigError("x", "f")) == 400
    assert http_status(HookRejectedError("no")) == 403
    assert http_status(ConflictError("x")) == 409
    assert http_status(InvalidChainError("x")) == 422
    assert http_status(BackendUnavailableError("x")) == 503
    assert http_status(PoolTimeoutError("x")) == 503
    assert http_status(BackendError("x")) == 500
    assert http_status(MigrationRequiredError("x")) == 500
    assert http_status(DataconError("x")) == 500
    assert http_status(RuntimeError("x")) == 500


def test_pydantic_type_adapter_serialises_and_validates_records() -> None:
    pydantic = pytest.importorskip("pydantic")
    for model in MODELS:
        adapter = pydantic.TypeAdapter(type(model))
        assert adapter.dump_python(model, mode="json") == model.to_dict()
        assert json.loads(adapter.dump_json(model)) == model.to_dict()
        assert adapter.validate_python(model.to_dict()) == model
    with pytest.raises(pydantic.ValidationError, match="naive"):
        pydantic.TypeAdapter(Conversation).validate_python({"id": "c", "created_at": "2026-01-02T03:04:05"})
    nested = pydantic.TypeAdapter(dict[str, list[Conversation]])
    assert nested.dump_python({"data": [CONV]}, mode="json") == {"data": [CONV.to_dict()]}


def test_fastapi_returns_and_accepts_records() -> None:
    import fastapi
    import fastapi.responses
    from fastapi.encoders import jsonable_encoder
    from fastapi.testclient import TestClient

    app = fastapi.FastAPI()

    @app.get("/conversation")
    def get_conversation() -> Conversation:
        return CONV

    @app.get("/items")
    def get_items() -> list[ConversationItem]:
        return [ITEM]

    @app.post("/conversation")
    def post_conversation(body: Conversation = fastapi.Body()) -> dict[str, Any]:  # noqa: B008 (FastAPI idiom)
        return {"id": body.id, "created_at": body.created_at.isoformat()}

    @app.get("/conflict")
    def conflict() -> None:
        raise ConflictError("conversation exists")

    @app.exception_handler(DataconError)
    def on_error(request: Any, exc: DataconError) -> Any:
        return fastapi.responses.JSONResponse({"error": str(exc)}, status_code=http_status(exc))

    client = TestClient(app)
    assert client.get("/conversation").json() == CONV.to_dict()
    assert client.get("/items").json() == [ITEM.to_dict()]
    posted = client.post("/conversation", json={"id": "c", "created_at": "2026-01-02T05:04:05.000006+02:00"})
    assert posted.json() == {"id": "c", "created_at": "2026-01-02T03:04:05.000006+00:00"}
    assert client.post("/conversation", json={"id": "c", "created_at": "2026-01-02T05:04:05"}).status_code == 422
    assert client.get("/conflict").status_code == 409
    assert client.get("/openapi.json").status_code == 200
    # A handler without a return annotation goes through jsonable_encoder: to_dict() as its encoder.
    encoded = jsonable_encoder({"data": [CONV]}, custom_encoder={JsonRecord: JsonRecord.to_dict})
    assert encoded == {"data": [CONV.to_dict()]}
