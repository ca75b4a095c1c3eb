"""Filtered global subscriptions (UPS-SUB-08): the Matching Keys, parsed once by the one parser
and stored normalised (``{"keys": [...]}``, the parsed matches), compiled to the same WHERE clause
as a C-FIND / Search with those keys (one matcher: ``ups.search``). A stored filter is compiled
once per process (``where_of`` caches by its JSON)."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

from sqlalchemy import ColumnElement

from ..dicom.dataset import JsonDataset
from ..ups.errors import Outcome, UPSError

if TYPE_CHECKING:
    from ..dicom.query import Match, Query

FilterQuery = Union["Query", JsonDataset, Sequence[tuple[str, str]]]


def to_stored(filter_query: FilterQuery | None) -> dict[str, Any]:
    """``filter_query`` is a parsed ``dicom.query.Query`` (the N-ACTION Matching Keys), a
    Matching Keys dataset (DICOM JSON) or the ``attr=value`` pairs of an HTTP ``filter``
    parameter; the result is what the row keeps: the parsed keys. Raises UPSError (0106 / 400)
    when the keys are missing or cannot be parsed."""
    from ..dicom.query import Query

    if not filter_query or (isinstance(filter_query, Query) and not filter_query.keys):
        raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE, "a filtered global subscription needs matching keys")
    query = filter_query if isinstance(filter_query, Query) else _parse(
        {"dataset": filter_query} if isinstance(filter_query, dict)
        else {"items": [[str(k), str(v)] for k, v in filter_query]})
    return {"keys": [_match_json(m) for m in query.keys]}


def _parse(stored: dict[str, Any]) -> Query:
    """The Query of a stored filter: the normalised keys, or (rows written before filters were
    stored normalised) the dataset or ``attr=value`` pairs they were given as."""
    from ..dicom.query import Query, QueryError, parse_http_query, query_from_identifier

    try:
        if "keys" in stored:
            return Query(keys=[_match_of(k) for k in stored["keys"]])
        if "dataset" in stored:
            return query_from_identifier(stored["dataset"])
        return parse_http_query([(k, v) for k, v in stored["items"]])
    except (QueryError, ValueError, KeyError, TypeError) as exc:
        raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE, f"invalid subscription filter: {exc}") from None


def where_of(stored: dict[str, Any]) -> ColumnElement[bool]:
    """The WHERE condition on ``workitems`` selecting what the filter subscribes to."""
    return _compiled(json.dumps(stored, sort_keys=True))


def where_of_json(stored_json: str) -> ColumnElement[bool]:
    """``where_of`` of a stored filter as JSON text (as PostgreSQL returns it)."""
    return _compiled(stored_json)


@functools.lru_cache(maxsize=1024)
def _compiled(stored_json: str) -> ColumnElement[bool]:
    from ..ups.search import where_clause

    return where_clause(_parse(json.loads(stored_json)))


def _match_json(m: Match) -> dict[str, Any]:
    return {"tag": m.tag, "vr": m.vr, "values": list(m.values),
            "item": None if m.item is None else [_match_json(i) for i in m.item]}


def _match_of(j: dict[str, Any]) -> Match:
    from ..dicom.query import Match

    item = j.get("item")
    return Match(j["tag"], j["vr"], list(j.get("values") or []),
                 None if item is None else [_match_of(i) for i in item])


def parse_filter_param(values: list[str]) -> list[tuple[str, str]]:
    """``filter=attr=value[,attr=value]`` (repeatable) -> pairs (PS3.18 11.10, UPS-SUB-12)."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE, f"filter {part!r}: expected attribute=value")
            key, val = part.split("=", 1)
            pairs.append((key.strip(), val.strip()))
    return pairs
