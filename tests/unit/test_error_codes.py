"""The one table of how errors cross the wire: each class has its own status and reason, the
service answers with them, and the client raises the same class again (pure: no server here;
tests/integration/mlclient/test_errors.py does it over a real gRPC call)."""

from __future__ import annotations

from http import HTTPStatus

import grpc
import pytest
from sqlalchemy.exc import OperationalError

from edgeloop.core import error_codes
from edgeloop.core.error_codes import REASON_KEY, TABLE, row_for_class, row_for_status
from edgeloop.core.errors import (
    DatabaseNotMigrated,
    InvalidEvent,
    InvalidRequest,
    MLServiceError,
    MLServiceUnavailable,
    ModelNotTrained,
    NotFound,
    PermanentError,
    ServiceUnavailable,
    TransientError,
)
from edgeloop.mlclient.client import error_for
from edgeloop.mlservice.http_api import _Aborted, _CallContext
from edgeloop.mlservice.predictor import NoModelForEvent
from edgeloop.mlservice.rpc import rpc, wire_error

ROWS = pytest.mark.parametrize("row", TABLE, ids=lambda r: r.reason)


def test_every_class_has_one_row_with_its_own_reason_and_status():
    assert len({r.error for r in TABLE}) == len(TABLE)
    assert len({r.reason for r in TABLE}) == len(TABLE)
    assert len({(r.status, r.reason) for r in TABLE}) == len(TABLE)
    assert {r.error for r in TABLE} >= {InvalidRequest, NotFound, ModelNotTrained, ServiceUnavailable}
    for r in TABLE:
        assert grpc.StatusCode[r.status] is not grpc.StatusCode.OK
        assert 400 <= r.http < 600
        assert r.reason.isascii() and r.reason == r.reason.upper()


@ROWS
def test_each_class_round_trips_from_service_to_client(row):
    raised = row.error("the service says no")
    # The service answers with the row's status and reason
    assert wire_error(raised) is row
    # And the client raises that class again, remembering the status
    error = error_for("SomeRpc", grpc.StatusCode[row.status], "the service says no", row.reason)
    assert isinstance(error, row.error)
    assert error.code == row.status
    assert str(error) == f"SomeRpc: {row.status}: the service says no"
    if issubclass(row.error, PermanentError):
        assert type(error) is row.error
    else:  # every transient status is the client's own class, which the breaker counts
        assert type(error) is MLServiceUnavailable


@pytest.mark.parametrize("raised, reason", [
    (NoModelForEvent("no outcome model before 2019-08-09"), "MODEL_NOT_TRAINED"),
    (InvalidEvent("bad_field", "roi"), "PERMANENT"),
    (DatabaseNotMigrated("run edgeloop db upgrade"), "PERMANENT"),
    (MLServiceUnavailable("down"), "SERVICE_UNAVAILABLE"),
    (TransientError("busy"), "TRANSIENT"),
    (OperationalError("SELECT 1", {}, Exception("connection refused")), "SERVICE_UNAVAILABLE"),
])
def test_a_subclass_answers_with_its_nearest_row(raised, reason):
    assert wire_error(raised).reason == reason


@pytest.mark.parametrize("raised", [ValueError("bug"), KeyError("x"), MLServiceError("no row", "INTERNAL")])
def test_an_error_without_a_row_is_internal(raised):
    assert wire_error(raised) is None


@pytest.mark.parametrize("status, reason, expected", [
    ("INVALID_ARGUMENT", None, InvalidRequest),  # one row has the status: its class
    ("NOT_FOUND", None, NotFound),
    ("NOT_FOUND", "SOMETHING_NEWER", NotFound),  # a reason this client does not know
    ("NOT_FOUND", "MODEL_NOT_TRAINED", NotFound),  # a reason that contradicts the status
    ("FAILED_PRECONDITION", None, MLServiceError),  # two rows share it: no guess
    ("UNAUTHENTICATED", None, MLServiceError),
    ("PERMISSION_DENIED", None, MLServiceError),
    ("INTERNAL", None, MLServiceError),
    ("UNIMPLEMENTED", None, MLServiceError),
    ("UNAVAILABLE", None, MLServiceUnavailable),
    ("DEADLINE_EXCEEDED", "NOT_FOUND", MLServiceUnavailable),
])
def test_without_a_usable_reason_the_client_falls_back_on_the_status(status, reason, expected):
    error = error_for("SomeRpc", grpc.StatusCode[status], "details", reason)
    assert type(error) is expected
    assert error.code == status


def test_the_reason_is_read_from_trailing_metadata():
    assert error_codes.reason_in(((REASON_KEY, "NOT_FOUND"),)) == "NOT_FOUND"
    assert error_codes.reason_in((("other", "x"), (REASON_KEY, b"MODEL_NOT_TRAINED"))) == "MODEL_NOT_TRAINED"
    assert error_codes.reason_in((("other", "x"),)) is None
    assert error_codes.reason_in(None) is None


def test_lookups_by_class_and_status_agree():
    for row in TABLE:
        assert row_for_class(row.error) is row
        assert row_for_status(row.status, row.reason) is row


class _Handlers:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    @rpc
    def Fails(self, request, context):
        raise self.exc


class _RecordingContext:
    def __init__(self) -> None:
        self.trailing = None

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing = metadata

    def abort(self, code, details):
        raise _Aborted(code, details)


@ROWS
def test_the_service_aborts_with_the_rows_status_and_reason(row):
    context = _RecordingContext()
    with pytest.raises(_Aborted) as ended:
        _Handlers(row.error("no")).Fails(None, context)
    assert ended.value.code is grpc.StatusCode[row.status] and ended.value.details == "no"
    assert context.trailing == ((REASON_KEY, row.reason),)


@ROWS
def test_the_http_api_answers_with_the_rows_http_status(row):
    with pytest.raises(_Aborted) as ended:
        _Handlers(row.error("no")).Fails(None, _CallContext())
    assert ended.value.http_status == row.http


def test_an_unexpected_error_is_internal_without_a_reason_and_hides_its_message():
    context = _RecordingContext()
    with pytest.raises(_Aborted) as ended:
        _Handlers(ValueError("secret path /etc/x")).Fails(None, context)
    assert ended.value.code is grpc.StatusCode.INTERNAL and "secret" not in ended.value.details
    assert context.trailing is None
    with pytest.raises(_Aborted) as over_http:
        _Handlers(ValueError("boom")).Fails(None, _CallContext())
    assert over_http.value.http_status == HTTPStatus.INTERNAL_SERVER_ERROR
