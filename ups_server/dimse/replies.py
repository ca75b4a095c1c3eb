"""Turning service outcomes into DIMSE statuses: the status comes from ``Outcome``, never typed here."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from pydicom import Dataset

from ..db.faults import database_unavailable
from ..ups.errors import Outcome, PolicyOutcome, UPSError

log = logging.getLogger(__name__)

ERROR_COMMENT_MAX = 64  # LO


def status(outcome: Outcome | PolicyOutcome, detail: str | None = None) -> Dataset:
    """A status dataset for ``outcome``; failures carry ``detail`` as Error Comment."""
    rsp = Dataset()
    rsp.Status = outcome.status
    if detail and outcome.is_failure:
        rsp.ErrorComment = detail[:ERROR_COMMENT_MAX]
    return rsp


def of_error(exc: UPSError) -> Dataset:
    return status(exc.outcome, exc.detail)


def processing_failure(exc: BaseException, what: str) -> Dataset:
    if database_unavailable(exc):
        log.warning("%s: the database is unavailable (%s)", what, type(exc).__name__)
        return status(Outcome.PROCESSING_FAILURE, f"{what}: database unavailable; retry later")
    log.error("%s failed", what, exc_info=exc)
    return status(Outcome.PROCESSING_FAILURE, f"{what}: {type(exc).__name__}")


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` on the loop and await its result when it is awaitable (sync or async services)."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result
