"""UPS operations (PS3.4 Annex CC) over PostgreSQL: the one place the UPS rules are applied.

Every operation runs in one transaction: it locks the workitem row (``SELECT ... FOR UPDATE``),
reads the state tables, writes, and calls the registered listeners *inside the same
transaction*, so rule effects and event outbox rows commit or roll back with the change.
The ``*_in(conn, ...)`` variants run inside a caller's transaction (used by the rules).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    bindparam,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.engine import autocommit
from ..db.tables import cancel_requests, workitems
from ..dicom.dataset import JsonDataset, element, first, items
from ..dicom.datetime import format_dt
from ..dicom.query import Query
from ..dicom.uids import FILTERED_GLOBAL_SUBSCRIPTION, GLOBAL_SUBSCRIPTION, UPS_PUSH, is_valid_uid, new_uid
from . import inputs
from . import tags as t
from .attributes import (
    CANCELED,
    DEFAULT_DISCONTINUATION_REASON,
    IN_PROGRESS,
    SCHEDULED,
    STATES,
    final_state_problems,
    validate_create,
    validate_set,
)
from .columns import COLUMN_TAGS, index_columns
from .errors import Outcome, PolicyOutcome, UPSError
from .policy import OPEN_ACCESS, AccessPolicy, Act
from .requests import UPSRequest
from .search import Page, search, where_clause
from .states import CHANGE_STATE, REQUEST_CANCEL, UPDATE, Action, Txn, compare_txn

log = logging.getLogger(__name__)

DEFAULT_WORKLIST_LABEL = "UPS_SERVER"
CLAIM_STATEMENTS = 512  # claim-next statements kept built, by (query, claim scope, requester, reader)
READER_SCHEME = "99UPS_READER"  # coding scheme of a reader named as Human Performer Code (reassign)


@dataclass
class Change:
    """What one operation did to one workitem; given to listeners inside the transaction.

    kind: "created" | "updated" | "state" | "cancel-requested".
    For "state", ``previous_state`` -> ``state``; a SCP-side cancel of a SCHEDULED workitem
    gives two "state" changes (IN PROGRESS, then CANCELED) as PS3.4 CC.2.2.3 requires.
    """

    kind: str
    uid: str
    state: str
    dataset: JsonDataset
    previous: JsonDataset | None = None
    previous_state: str | None = None
    requester: str | None = None
    info: JsonDataset | None = None  # cancel request payload
    row: dict[str, Any] = field(default_factory=dict)  # the workitem row after the change
    principal: Any = None  # who asked (None: the server itself, e.g. a rule effect)


Listener = Callable[[AsyncConnection, Change], Awaitable[None]]
ManyListener = Callable[[AsyncConnection, list[Change]], Awaitable[None]]


@dataclass(frozen=True)
class ClaimHook:
    """What a listener does for a claim by claim-next (SCHEDULED -> IN PROGRESS, ``Change`` kind
    "state"), so that the claim runs as ONE autocommit statement instead of a transaction calling the
    listener. ``sql(claimed)``: data-modifying CTEs over ``claimed``, the CTE of claim-next's UPDATE
    (the claimed row after the claim: the columns of ``workitems`` and the listeners' ``row_columns``),
    that do in the database what the listener would; each returns rows (the statement counts them,
    which runs a SELECT too). The statement is kept and shared by every principal of a claim scope and
    by every request: what the CTEs take of the request are bind parameters whose values
    ``params(principal, requester)`` gives. ``after`` is told the change once it has committed (what
    the listener does in the process alone). A listener without a hook makes claim-next a transaction
    that calls it, as other changes do."""

    sql: Callable[[Any], list[Any]] | None = None
    params: Callable[[Any, str | None], dict[str, Any]] | None = None
    after: Callable[[Change], None] | None = None


class ClaimGuard(Protocol):
    """A check before a claim (SCHEDULED -> IN PROGRESS), e.g. "only the scheduled performer".

    ``reader`` is who claims (``AccessPolicy.reader``: the authenticated person, in open mode the
    requester). ``check`` raises UPSError to refuse a claim by name (Outcome.NOT_AUTHORIZED, or the
    policy's own ``PolicyOutcome``); ``claimable`` gives the same rule as SQL, ANDed into claim-next's
    one statement so that it skips what the reader may not claim (None: no filter);
    ``claim_columns`` are what the claim records for the guard, written by the claim's UPDATE (SQL
    over the claimed row, or values); ``refusal`` names the guard's outcome when that UPDATE broke
    one of the guard's constraints (None: not the guard's);
    ``release`` is told when a claim is given back (the skip / reassign extensions; ``skipped``:
    by its performer) and returns the columns of the row it reset, written with the release.
    """

    async def check(self, conn: AsyncConnection, row: dict[str, Any], reader: str | None) -> None: ...

    def claimable(self, reader: str | None) -> ColumnElement[bool] | None: ...

    def claim_columns(self, reader: str | None) -> dict[str, Any]: ...

    def refusal(self, exc: IntegrityError, reader: str | None) -> UPSError | None: ...

    async def release(self, conn: AsyncConnection, row: dict[str, Any], skipped: bool) -> dict[str, Any]: ...


@dataclass
class Result:
    """A successful operation: the workitem UID, its dataset, and a warning outcome if any."""

    uid: str
    dataset: JsonDataset | None = None
    warning: Outcome | None = None
    detail: str | None = None
    transaction_uid: str | None = None  # claim-next: the Transaction UID the claim holds


def _now_dt() -> str:
    return format_dt()


class UPSService:
    """The UPS SCP's behaviour, shared by UPS-RS, DIMSE and the rules engine."""

    def __init__(self, engine: AsyncEngine, default_worklist_label: str = DEFAULT_WORKLIST_LABEL):
        self.engine = engine
        # reads of one statement, and claim-next's one statement: one round trip, no BEGIN / ROLLBACK or COMMIT
        self.reads = autocommit(engine)
        self.default_worklist_label = default_worklist_label
        self.listeners: list[Listener] = []
        self.many_listeners: dict[Listener, ManyListener] = {}
        self.claim_hooks: dict[Listener, ClaimHook] = {}
        self.claim_guards: list[ClaimGuard] = []
        self.access: AccessPolicy = OPEN_ACCESS  # who may see and act on what (rules/access.py)
        # SQL over the written workitem row that listeners read from ``Change.row``: the UPDATE of a
        # change returns it, which saves each listener a query of its own
        self.row_columns: dict[str, ColumnElement[Any]] = {}
        self._claim_statements: dict[tuple[Any, ...], Any] = {}  # claim-next's, by (query, claim scope, ...)

    def add_listener(self, listener: Listener, many: ManyListener | None = None,
                     row_columns: dict[str, ColumnElement[Any]] | None = None, claim: ClaimHook | None = None) -> None:
        """``many``: the same listener for a batch of changes (``rules apply``), when it can do
        the batch with fewer statements than one call per change; ``row_columns``: what it reads
        from ``Change.row`` of an update or state change (absent from rows written otherwise);
        ``claim``: what it does for a claim-next, in its one statement (``ClaimHook``)."""
        self.listeners.append(listener)
        if many is not None:
            self.many_listeners[listener] = many
        if claim is not None:
            self.claim_hooks[listener] = claim
        self.row_columns.update(row_columns or {})

    async def _notify(self, conn: AsyncConnection, change: Change) -> None:
        for listener in self.listeners:
            await listener(conn, change)

    async def notify_many(self, conn: AsyncConnection, changes: list[Change]) -> None:
        """Every listener sees every change (its batch form when it has one)."""
        if not changes:
            return
        for listener in self.listeners:
            many = self.many_listeners.get(listener)
            if many is not None:
                await many(conn, changes)
            else:
                for change in changes:
                    await listener(conn, change)

    # ---- reading --------------------------------------------------------------------------

    async def _lock(self, conn: AsyncConnection, uid: str) -> dict[str, Any]:
        row = (await conn.execute(_LOCK, {"lock_uid": uid})).mappings().first()
        if row is None:
            raise UPSError(Outcome.NO_SUCH_UPS, f"Workitem {uid} does not exist")
        return dict(row)

    async def retrieve(self, uid: str, principal: Any = None) -> JsonDataset:
        """The workitem's dataset (never the Transaction UID: UPS-TXN-07); one the principal may
        not see does not exist for it."""
        self.access.allow(principal, Act.RETRIEVE)
        visible = self.access.visible(principal)
        async with self.reads.connect() as conn:
            stmt = _RETRIEVE if visible is None else _RETRIEVE.where(visible)
            ds = (await conn.execute(stmt, {"retrieve_uid": uid})).scalar()
        if ds is None:
            raise UPSError(Outcome.NO_SUCH_UPS, f"Workitem {uid} does not exist")
        return ds

    # ---- create ---------------------------------------------------------------------------

    async def create(self, request: UPSRequest) -> Result:
        """N-CREATE / POST /workitems. No workitem UID -> taken from (0008,0018) or generated."""
        self.access.allow(request.principal, Act.CREATE)
        async with self.engine.begin() as conn:
            return await self.create_in(conn, request.workitem_uid, request.dataset, requester=request.requester,
                                        principal=request.principal)

    async def create_in(
        self,
        conn: AsyncConnection,
        uid: str | None,
        dataset: JsonDataset,
        *,
        requester: str | None = None,
        principal: Any = None,
        if_absent: bool = False,
        columns: dict[str, Any] | None = None,
    ) -> Result | None:
        """Create inside ``conn``'s transaction. With ``if_absent`` an existing UID is not an
        error: None is returned and nothing changes (rule effects are idempotent). ``columns``:
        further columns of the row that belong to the caller (the rules' read-group membership,
        ``rules.guard.membership``), written as given in the same INSERT."""
        uid, ds, modifications = self._prepare_create(uid, dataset)
        values = {"uid": uid, "state": SCHEDULED, **(columns or {}), **index_columns(ds)}
        stmt = pg_insert(workitems).values(**values).on_conflict_do_nothing(index_elements=["uid"])
        created = (await conn.execute(stmt.returning(workitems))).mappings().first()
        if created is None:
            if if_absent:
                return None
            raise UPSError(Outcome.DUPLICATE_SOP_INSTANCE, f"Workitem {uid} already exists")
        await self._notify(conn, Change("created", uid, SCHEDULED, ds, requester=requester, row=dict(created),
                                        principal=principal))
        warning = Outcome.CREATED_WITH_MODIFICATIONS if modifications else None
        return Result(uid, ds, warning, "; ".join(modifications) or None)

    def _prepare_create(self, uid: str | None, dataset: JsonDataset, owned: bool = False
                        ) -> tuple[str, JsonDataset, list[str]]:
        """The checked and completed N-CREATE dataset, its UID and the modifications made
        (``owned``: ``dataset`` is the caller's to change, no copy is made)."""
        ds, modifications = validate_create(dataset if owned else copy.deepcopy(dataset))
        ds_uid = first(ds, t.SOP_INSTANCE_UID)
        if uid and ds_uid and uid != ds_uid:
            raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE,
                           f"the workitem UID {uid} differs from SOPInstanceUID (0008,0018) {ds_uid}")
        uid = uid or ds_uid or new_uid()
        if not is_valid_uid(uid):
            raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE, f"{uid!r} is not a valid UID")
        if uid in (GLOBAL_SUBSCRIPTION, FILTERED_GLOBAL_SUBSCRIPTION):  # PS3.4 CC.3.1: well-known instances
            raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE,
                           f"{uid} is reserved for the global subscriptions; it cannot name a workitem")
        ds[t.SOP_CLASS_UID] = element("UI", UPS_PUSH)
        ds[t.SOP_INSTANCE_UID] = element("UI", uid)
        ds[t.SCHEDULED_PROCEDURE_STEP_MODIFICATION_DATETIME] = element("DT", _now_dt())
        if not first(ds, t.WORKLIST_LABEL):
            ds[t.WORKLIST_LABEL] = element("LO", self.default_worklist_label)
        return uid, ds, modifications

    async def create_many_in(self, conn: AsyncConnection, new: list[tuple[str, JsonDataset, dict[str, Any]]]
                             ) -> tuple[list[str], dict[str, UPSError]]:
        """SCP-side creates of many workitems (``rules apply``) in ``conn``'s transaction: each
        (uid, dataset - completed in place, the caller's further columns as in ``create_in``, the same
        keys for every one) checked as one N-CREATE; one batched INSERT of the absent UIDs; listeners
        told in one batch. The UIDs created, and the refused ones with why."""
        refused: dict[str, UPSError] = {}
        prepared: dict[str, JsonDataset] = {}
        rows = []
        for uid, dataset, columns in new:
            try:
                uid, ds, _ = self._prepare_create(uid, dataset, owned=True)
            except UPSError as exc:
                refused[uid] = exc
                continue
            prepared[uid] = ds
            rows.append({"uid": uid, "state": SCHEDULED, **columns, **index_columns(ds)})
        if not rows:
            return [], refused
        stmt = (pg_insert(workitems).on_conflict_do_nothing(index_elements=["uid"])
                .returning(*(c for c in workitems.c if c.name != "dataset")))
        created = [dict(row) for row in (await conn.execute(stmt, rows)).mappings()]
        await self.notify_many(conn, [Change("created", row["uid"], SCHEDULED, prepared[row["uid"]],
                                             row={**row, "dataset": prepared[row["uid"]]}) for row in created])
        return [row["uid"] for row in created], refused

    # ---- update ---------------------------------------------------------------------------

    async def update(self, request: UPSRequest) -> Result:
        """N-SET / POST /workitems/{uid} (UPS-SET-01..14): all or nothing."""
        uid, transaction_uid = _addressed(request), transaction_uid_of(request)
        changes = validate_set(copy.deepcopy(request.dataset))
        async with self.engine.begin() as conn:
            row = await self._lock(conn, uid)
            await self.access.check(conn, request.principal, request.requester, row, Act.UPDATE)
            decision = UPDATE[(row["state"], compare_txn(transaction_uid, row["state"], row["transaction_uid"]))]
            if isinstance(decision, Outcome):
                raise UPSError(decision)
            previous = row["dataset"]
            ds = {**previous, **changes}  # whole sequences are replaced (UPS-SET-07)
            self.access.performed(request.principal, ds)
            ds[t.SCHEDULED_PROCEDURE_STEP_MODIFICATION_DATETIME] = element("DT", _now_dt())
            new_row = await self._write(conn, uid, ds, previous)
            await self._notify(conn, Change("updated", uid, row["state"], ds, previous=previous, row=new_row,
                                            principal=request.principal))
        return Result(uid, ds)

    async def _write(self, conn: AsyncConnection, uid: str, ds: JsonDataset, previous: JsonDataset | None = None,
                     **extra: Any) -> dict[str, Any]:
        """Write ``ds`` (and ``extra`` columns) to the workitem row; the row after it, with ``ds``
        as its dataset and the listeners' ``row_columns``. Given the ``previous`` dataset (of the
        row locked), a change of no attribute an indexed column is derived from sends only the
        changed attributes (``dataset || patch``), not the whole dataset and every column."""
        patch = _patch(previous, ds)
        values = index_columns(ds) if patch is None else {"dataset": workitems.c.dataset.op("||")(
            cast(literal(patch, JSONB), JSONB))}
        stmt = (
            update(workitems)
            .where(workitems.c.uid == uid)
            .values(**values, updated_at=func.now(), **extra)
            .returning(*_ROW_BUT_DATASET, *(c.label(name) for name, c in self.row_columns.items()))
        )
        return {**(await conn.execute(stmt)).mappings().one(), "dataset": ds}

    async def amend_in(
        self, conn: AsyncConnection, uid: str, amend: Callable[[JsonDataset], JsonDataset | None],
        states: tuple[str, ...] = (SCHEDULED,),
    ) -> Result | None:
        """An SCP-side change (rules appending input references) inside ``conn``'s transaction:
        lock the row; if its state is in ``states`` apply ``amend`` to a copy of the dataset and
        write it, telling listeners ("updated"). None when nothing changed."""
        row = await self._lock(conn, uid)
        if row["state"] not in states:
            return None
        ds = amend(copy.deepcopy(row["dataset"]))
        if ds is None:
            return None
        ds[t.SCHEDULED_PROCEDURE_STEP_MODIFICATION_DATETIME] = element("DT", _now_dt())
        new_row = await self._write(conn, uid, ds)
        await self._notify(conn, Change("updated", uid, row["state"], ds, previous=row["dataset"], row=new_row))
        return Result(uid, ds)

    async def amend_many_in(self, conn: AsyncConnection,
                            amended: list[tuple[dict[str, Any], JsonDataset, dict[str, Any]]]) -> list[str]:
        """SCP-side changes of many SCHEDULED workitems (``rules apply``) whose rows ``conn``
        holds locked: (row, new dataset, the caller's further columns as in ``create_in``, the same
        keys for every one) written in one statement, only while still SCHEDULED. Listeners see
        "updated". The UIDs written."""
        if not amended:
            return []
        now = _now_dt()
        columns = []
        for _, ds, extra in amended:
            ds[t.SCHEDULED_PROCEDURE_STEP_MODIFICATION_DATETIME] = element("DT", now)
            columns.append({**extra, **index_columns(ds)})
        stmt = (update(workitems)
                .where(workitems.c.uid == bindparam("b_uid"), workitems.c.state == SCHEDULED)
                .values(**{k: bindparam("b_" + k) for k in columns[0]}, updated_at=func.now()))
        await conn.execute(stmt, [{"b_uid": row["uid"], **{"b_" + k: v for k, v in cols.items()}}
                                  for (row, _, _), cols in zip(amended, columns, strict=True)])
        await self.notify_many(conn, [
            Change("updated", row["uid"], SCHEDULED, ds, previous=row["dataset"], row={**row, **cols})
            for (row, ds, _), cols in zip(amended, columns, strict=True)])
        return [row["uid"] for row, _, _ in amended]

    async def append_inputs_in(self, conn: AsyncConnection, appends: dict[str, list[JsonDataset]]
                               ) -> inputs.Appended:
        """SCP-side: Input Information items (one per study and series) appended to SCHEDULED
        workitems in ``conn``'s transaction, in one statement that sends no dataset (``inputs.py``:
        what it leaves alone). Listeners see "updated"."""
        done = await inputs.append_inputs(conn, appends)
        await self.notify_many(conn, [Change("updated", row["uid"], SCHEDULED, row["dataset"],
                                             previous=row.pop("previous"), row=row) for row in done.rows])
        return done

    # ---- change state ---------------------------------------------------------------------

    async def change_state(self, request: UPSRequest) -> Result:
        """N-ACTION type 1 / PUT /workitems/{uid}/state (Table CC.1.1-2): the requested state is
        the request dataset's Procedure Step State."""
        uid, transaction_uid, requester = _addressed(request), transaction_uid_of(request), request.requester
        requested = first(request.dataset, t.PROCEDURE_STEP_STATE)
        if not requested:
            raise UPSError(Outcome.MISSING_ATTRIBUTE, "ProcedureStepState (0074,1000) is required")
        if requested not in STATES:
            raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE,
                           f"ProcedureStepState (0074,1000) {requested!r} is not one of "
                           "IN PROGRESS, COMPLETED, CANCELED")
        async with self.engine.begin() as conn:
            row = await self._lock(conn, uid)
            return await self._change_state_locked(conn, row, requested, transaction_uid, requester,
                                                   request.principal)

    async def _change_state_locked(
        self, conn: AsyncConnection, row: dict[str, Any], requested: str, txn: str | None, requester: str | None,
        principal: Any = None,
    ) -> Result:
        uid, state = row["uid"], row["state"]
        if state == SCHEDULED and requested == IN_PROGRESS:
            await self.access.check(conn, principal, requester, row, Act.CLAIM)
        elif state == IN_PROGRESS and requested != IN_PROGRESS:  # a second claim: the table answers
            await self.access.check(conn, principal, requester, row, Act.CHANGE_STATE)
        decision = CHANGE_STATE[(requested, state, compare_txn(txn, state, row["transaction_uid"]))]
        if isinstance(decision, Outcome):
            if decision.is_warning:
                return Result(uid, row["dataset"], decision)
            raise UPSError(decision)
        ds = copy.deepcopy(row["dataset"])
        extra: dict[str, Any] = {}
        if decision is Action.CLAIM:
            if not is_valid_uid(txn or ""):  # UPS-TXN-01: a UID (VR UI) the performer generated
                raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE,
                               f"Transaction UID (0008,1195) {txn!r} is not a valid UID")
            reader = self.access.reader(principal, requester)
            for guard in self.claim_guards:
                await guard.check(conn, row, reader)
            extra = self._claim_columns(txn, requester, reader)
        elif decision is Action.CANCEL:
            _fill_cancellation(ds, None)
        elif decision is Action.COMPLETE:
            extra = {"completed_at": func.now()}
            self.access.performed(principal, ds)
        if decision in (Action.COMPLETE, Action.CANCEL):
            problems = final_state_problems(ds, requested)
            if problems:
                raise UPSError(Outcome.FINAL_STATE_NOT_MET,
                               f"cannot become {requested}: missing {', '.join(problems)}")
        ds[t.PROCEDURE_STEP_STATE] = element("CS", requested)
        try:
            new_row = await self._write(conn, uid, ds, row["dataset"], state=requested, **extra)
        except IntegrityError as exc:
            refusal = self._refusal(exc, extra.get("claimant"))
            if refusal is None:
                raise
            raise refusal from None
        await self._notify(conn, Change("state", uid, requested, ds, previous=row["dataset"],
                                        previous_state=state, requester=requester, row=new_row, principal=principal))
        return Result(uid, ds)

    def _claim_columns(self, txn: Any, requester: str | None, reader: str | None) -> dict[str, Any]:
        """What a claim writes besides the state: the Transaction UID, the requester, the claimant,
        the time, and what the claim guards record."""
        columns: dict[str, Any] = {"transaction_uid": txn, "performer_aet": requester, "claimant": reader,
                                   "claimed_at": func.now()}
        for guard in self.claim_guards:
            columns.update(guard.claim_columns(reader))
        return columns

    def _refusal(self, exc: IntegrityError, reader: str | None) -> UPSError | None:
        """A claim's UPDATE broke a constraint: the refusal of the guard whose constraint it is."""
        for guard in self.claim_guards:
            refusal = guard.refusal(exc, reader)
            if refusal is not None:
                return refusal
        return None

    # ---- request cancellation -------------------------------------------------------------

    async def request_cancel(self, request: UPSRequest) -> Result:
        """N-ACTION type 2 / POST /workitems/{uid}/cancelrequest (UPS-CANCEL-01..08); the request
        dataset is the cancel request's information (reason, contact)."""
        uid, info, requester = _addressed(request), dict(request.dataset), request.requester
        async with self.engine.begin() as conn:
            row = await self._lock(conn, uid)
            if row["state"] in (SCHEDULED, IN_PROGRESS):
                await self.access.check(conn, request.principal, requester, row, Act.REQUEST_CANCEL)
            decision = REQUEST_CANCEL[row["state"]]
            if isinstance(decision, Outcome):
                if decision.is_warning:
                    return Result(uid, row["dataset"], decision)
                raise UPSError(decision)
            if decision is Action.RECORD_CANCEL_REQUEST:
                await conn.execute(insert(cancel_requests).values(workitem_uid=uid, requester=requester, info=info))
                await self._notify(conn, Change("cancel-requested", uid, IN_PROGRESS, row["dataset"],
                                                requester=requester, info=info, row=row, principal=request.principal))
                return Result(uid, row["dataset"])
            # SCHEDULED: the SCP cancels it itself (UPS-FINAL-04)
            return await self.cancel_scheduled_in(conn, row, info, requester, request.principal)

    async def cancel_scheduled_in(self, conn: AsyncConnection, row: dict[str, Any], info: JsonDataset | None,
                                  requester: str | None = None, principal: Any = None) -> Result:
        """The SCP cancels a SCHEDULED workitem whose row ``conn`` holds locked, meeting the final
        state requirements (UPS-FINAL-04) with what ``info`` carries (reason, discontinuation
        code), reporting IN PROGRESS then CANCELED (UPS-EVT-07)."""
        uid = row["uid"]
        ds = copy.deepcopy(row["dataset"])
        _fill_cancellation(ds, info)
        ds[t.PROCEDURE_STEP_STATE] = element("CS", CANCELED)
        new_row = await self._write(conn, uid, ds, row["dataset"], state=CANCELED)
        in_progress = {**row["dataset"], t.PROCEDURE_STEP_STATE: element("CS", IN_PROGRESS)}
        await self._notify(conn, Change("state", uid, IN_PROGRESS, in_progress, previous=row["dataset"],
                                        previous_state=SCHEDULED, requester=requester, info=info, row=new_row,
                                        principal=principal))
        await self._notify(conn, Change("state", uid, CANCELED, ds, previous=in_progress,
                                        previous_state=IN_PROGRESS, requester=requester, info=info, row=new_row,
                                        principal=principal))
        return Result(uid, ds)

    # ---- claim next (extension) -----------------------------------------------------------

    async def claim_next(self, request: UPSRequest, query: Query | None = None, attempts: int = 5) -> Result | None:
        """Claim the first SCHEDULED workitem matching ``query`` in claim order (priority, start
        datetime, creation order), skipping rows another claimer holds. None when none. Without a
        Transaction UID in the request the server generates one (the result's dataset holds it).

        One statement picks the row (``FOR UPDATE SKIP LOCKED``, the query's, the access policy's and
        the claim guards' predicates ANDed in: the same rules their checks apply to a claim by name),
        writes the claim and returns the row with what listeners read. When every listener has a
        ``ClaimHook`` that statement also does what they do (audit row, outbox rows) and runs alone,
        in autocommit: one round trip, no BEGIN / COMMIT; else it runs in a transaction that calls them."""
        txn, requester, principal = transaction_uid_of(request) or new_uid(), request.requester, request.principal
        self.access.allow(principal, Act.CLAIM)
        if not is_valid_uid(txn):  # UPS-TXN-01: a UID (VR UI) the performer generated
            raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE, f"Transaction UID (0008,1195) {txn!r} is not a valid UID")
        reader = self.access.reader(principal, requester)
        stmt = self._claim_next_statement(query, principal, requester, reader)
        hooks = self._claim_hooks()
        for _ in range(attempts):
            try:
                if hooks is not None:
                    params = {"claim_txn": txn}
                    for hook in hooks:
                        params.update(hook.params(principal, requester) if hook.params is not None else {})
                    async with self.reads.connect() as conn:
                        row = (await conn.execute(stmt, params)).mappings().first()
                    if row is None:
                        return None
                    change = self._claimed(row, requester, principal)
                    for hook in hooks:
                        if hook.after is not None:
                            hook.after(change)
                    return Result(change.uid, change.dataset, transaction_uid=txn)
                async with self.engine.begin() as conn:
                    row = (await conn.execute(stmt, {"claim_txn": txn})).mappings().first()
                    if row is None:
                        return None
                    change = self._claimed(row, requester, principal)
                    await self._notify(conn, change)
                    return Result(change.uid, change.dataset, transaction_uid=txn)
            except IntegrityError as exc:  # a guard's constraint refused what its filter let through (a race)
                if self._refusal(exc, reader) is None:
                    raise
            except UPSError as exc:  # a listener's policy refused it: next one
                if not isinstance(exc.outcome, PolicyOutcome):
                    raise
        return None

    def _claim_hooks(self) -> list[ClaimHook] | None:
        """Every listener's ClaimHook, in listener order; None when one has none."""
        hooks = [self.claim_hooks.get(listener) for listener in self.listeners]
        return None if None in hooks else hooks  # type: ignore[return-value]

    @staticmethod
    def _claimed(row: Any, requester: str | None, principal: Any) -> Change:
        """The change of a row claim-next claimed (its dataset already says IN PROGRESS)."""
        new_row = {k: v for k, v in row.items() if not k.startswith(_CLAIM_EFFECT)}
        ds = new_row["dataset"]
        previous = {**ds, t.PROCEDURE_STEP_STATE: element("CS", SCHEDULED)}
        return Change("state", new_row["uid"], IN_PROGRESS, ds, previous=previous, previous_state=SCHEDULED,
                      requester=requester, row=new_row, principal=principal)

    def _claim_next_statement(self, query: Query | None, principal: Any, requester: str | None,
                              reader: str | None) -> Any:
        """``UPDATE workitems SET <claim> WHERE uid = (SELECT uid ... FOR UPDATE SKIP LOCKED LIMIT 1)
        RETURNING *``: SCHEDULED -> IN PROGRESS (Table CC.1.1-2: a claim needs no more than the
        state SCHEDULED, which the pick requires) in the dataset too; the Transaction UID is the
        parameter ``claim_txn``. With every listener's ClaimHook, that UPDATE is the CTE ``claimed``
        of a statement that runs the hooks' CTEs too (their values of the request: ``ClaimHook.params``)
        and returns the claimed row. Built once per (query, the policy's claim scope of the principal,
        requester, reader) and kept (the last ``CLAIM_STATEMENTS``): building it cost more Python time
        than executing it."""
        key = (repr(query.keys) if query is not None else None, self.access.claim_scope(principal), requester, reader,
               *map(id, self.claim_guards), id(self.access), *self.row_columns, *map(id, self.listeners))
        stmt = self._claim_statements.pop(key, None)
        if stmt is None:
            filters = [where_clause(query) if query is not None else None, self.access.claimable(principal),
                       *(guard.claimable(reader) for guard in self.claim_guards)]
            stmt = self._build_claim_next([f for f in filters if f is not None], requester, reader)
            hooks = self._claim_hooks()
            if hooks is not None:
                stmt = _with_effects(stmt, hooks)
            if len(self._claim_statements) >= CLAIM_STATEMENTS:
                del self._claim_statements[next(iter(self._claim_statements))]
        self._claim_statements[key] = stmt  # most recently used last
        return stmt

    def _build_claim_next(self, filters: list[ColumnElement[bool]], requester: str | None, reader: str | None) -> Any:
        pick = (
            select(workitems.c.uid)
            .where(workitems.c.state == SCHEDULED, *filters)
            .order_by(workitems.c.priority_rank, workitems.c.start_dt.nulls_last(), workitems.c.seq)
            .limit(literal_column("1"))  # not a parameter: a generic plan then costs what a custom one does
            .with_for_update(skip_locked=True)
            .correlate(None)
        )
        state = {t.PROCEDURE_STEP_STATE: element("CS", IN_PROGRESS)}
        return (
            update(workitems)
            .where(workitems.c.uid == pick.scalar_subquery(), workitems.c.state == SCHEDULED)
            .values(state=IN_PROGRESS, dataset=workitems.c.dataset.op("||")(cast(literal(state, JSONB), JSONB)),
                    updated_at=func.now(), **self._claim_columns(bindparam("claim_txn"), requester, reader))
            .returning(workitems, *(c.label(name) for name, c in self.row_columns.items()))
        )

    async def skip(self, request: UPSRequest) -> Result:
        """Extension (not in PS3.4): the performer gives an IN PROGRESS workitem back to the pool
        (SCHEDULED again, no Transaction UID, no claimant); the claim guards are told it was skipped
        (the reading extension then does not offer it to that reader again for a while:
        reading/skips.py)."""
        uid, transaction_uid = _addressed(request), transaction_uid_of(request)
        async with self.engine.begin() as conn:
            row = await self._lock(conn, uid)
            if row["state"] != IN_PROGRESS:
                raise UPSError(Outcome.NOT_IN_PROGRESS, f"Workitem {uid} is {row['state']}, not IN PROGRESS")
            await self.access.check(conn, request.principal, request.requester, row, Act.SKIP)
            txn = compare_txn(transaction_uid, row["state"], row["transaction_uid"])
            if txn is not Txn.CORRECT:
                raise UPSError(Outcome.TRANSACTION_UID_MISSING if txn is Txn.MISSING
                               else Outcome.TRANSACTION_UID_INCORRECT)
            ds = await self._release(conn, row, copy.deepcopy(row["dataset"]), request.principal, skipped=True)
        return Result(uid, ds)

    async def reassign(self, uid: str, reader: str, principal: Any = None) -> Result:
        """Extension (an administrator's action): schedule the workitem for ``reader`` (its Scheduled
        Human Performers Sequence); an IN PROGRESS one is taken from its performer first (SCHEDULED
        again, its Transaction UID void)."""
        self.access.allow(principal, Act.REASSIGN)
        async with self.engine.begin() as conn:
            row = await self._lock(conn, uid)
            if row["state"] not in (SCHEDULED, IN_PROGRESS):
                raise UPSError(Outcome.MAY_NO_LONGER_BE_UPDATED, f"Workitem {uid} is {row['state']}")
            ds = copy.deepcopy(row["dataset"])
            ds[t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE] = {"vr": "SQ", "Value": [{
                t.HUMAN_PERFORMER_CODE_SEQUENCE: {"vr": "SQ", "Value": [{
                    t.CODE_VALUE: element("SH", reader), t.CODING_SCHEME_DESIGNATOR: element("SH", READER_SCHEME),
                    t.CODE_MEANING: element("LO", reader)}]},
                t.HUMAN_PERFORMER_NAME: element("PN", reader)}]}
            if row["state"] == IN_PROGRESS:
                ds = await self._release(conn, row, ds, principal)
            else:
                ds[t.SCHEDULED_PROCEDURE_STEP_MODIFICATION_DATETIME] = element("DT", _now_dt())
                new_row = await self._write(conn, uid, ds)
                await self._notify(conn, Change("updated", uid, SCHEDULED, ds, previous=row["dataset"], row=new_row,
                                                principal=principal))
        return Result(uid, ds)

    async def _release(self, conn: AsyncConnection, row: dict[str, Any], ds: JsonDataset, principal: Any,
                       skipped: bool = False) -> JsonDataset:
        """IN PROGRESS -> SCHEDULED (the skip / reassign extensions; never through Change State):
        no Transaction UID, performer or claimant any more; the claim guards reset what they
        recorded of the claim (the reader of a read group)."""
        released: dict[str, Any] = {}
        for guard in self.claim_guards:
            released.update(await guard.release(conn, row, skipped))
        ds[t.PROCEDURE_STEP_STATE] = element("CS", SCHEDULED)
        ds[t.SCHEDULED_PROCEDURE_STEP_MODIFICATION_DATETIME] = element("DT", _now_dt())
        new_row = await self._write(conn, row["uid"], ds, state=SCHEDULED, transaction_uid=None,
                                    performer_aet=None, claimant=None, claimed_at=None, **released)
        await self._notify(conn, Change("state", row["uid"], SCHEDULED, ds, previous=row["dataset"],
                                        previous_state=IN_PROGRESS, requester=row["performer_aet"], row=new_row,
                                        principal=principal))
        return ds

    async def transaction_uid_of(self, uid: str) -> str | None:
        async with self.reads.connect() as conn:
            return (await conn.execute(select(workitems.c.transaction_uid).where(workitems.c.uid == uid))).scalar()

    async def search(self, query: Query, *, offset: int = 0, limit: int | None = None, after: int | None = None,
                     count: bool = True, principal: Any = None) -> Page:
        """C-FIND / GET /workitems: one page of matches in creation order after ``after`` (keyset)
        and ``offset``, each shaped as the query asks (``Query.returns``), and what follows it,
        among the workitems the principal may see."""
        self.access.allow(principal, Act.SEARCH)
        return await search(self.reads, query, offset=offset, limit=limit, after=after, count=count,
                            within=self.access.visible(principal))


_ROW_BUT_DATASET = [c for c in workitems.c if c.name != "dataset"]
_CLAIM_EFFECT = "claim_effect_"  # the rows a ClaimHook CTE returned, counted in claim-next's result row


def _with_effects(update_stmt: Any, hooks: list[ClaimHook]) -> Any:
    """``WITH claimed AS (<claim-next's UPDATE ... RETURNING>), <the hooks' CTEs> SELECT claimed.*,
    (SELECT count(*) FROM <each hook CTE>)``: one statement, atomic in autocommit."""
    claimed = update_stmt.cte("claimed")
    effects = [cte for hook in hooks if hook.sql is not None for cte in hook.sql(claimed)]
    counts = [select(func.count()).select_from(cte).scalar_subquery().label(f"{_CLAIM_EFFECT}{i}")
              for i, cte in enumerate(effects)]
    return select(claimed, *counts).add_cte(*effects)
_LOCK = select(workitems).where(workitems.c.uid == bindparam("lock_uid")).with_for_update()  # built once
_RETRIEVE = select(workitems.c.dataset).where(workitems.c.uid == bindparam("retrieve_uid"))  # built once


def _patch(previous: JsonDataset | None, ds: JsonDataset) -> JsonDataset | None:
    """The top-level attributes ``ds`` changes in ``previous``, when no indexed column is derived
    from any of them and none is removed (None: the whole row must be written)."""
    if previous is None or previous.keys() - ds.keys():
        return None
    patch = {tag: value for tag, value in ds.items() if previous.get(tag) != value}
    return None if patch.keys() & COLUMN_TAGS else patch


def _addressed(request: UPSRequest) -> str:
    if not request.workitem_uid:
        raise UPSError(Outcome.MISSING_ATTRIBUTE, "the request names no workitem")
    return request.workitem_uid


def transaction_uid_of(request: UPSRequest) -> str | None:
    """The one Transaction UID of a request; two different ones are refused, naming where
    each came from (UPS-TXN-10)."""
    candidates = {c.uid: c for c in request.transaction_uids}
    if len(candidates) > 1:
        a, b = list(candidates.values())[:2]
        raise UPSError(Outcome.INVALID_ATTRIBUTE_VALUE,
                       f"two different Transaction UIDs: {a.uid} in {a.source.value}, {b.uid} in {b.source.value}")
    return next(iter(candidates), None)


def _fill_cancellation(ds: JsonDataset, info: JsonDataset | None) -> None:
    """Make the CANCELED final-state requirements true (UPS-FINAL-03/04/05): Cancellation
    DateTime and a Discontinuation Reason, plus what a cancel request carried."""
    info = info or {}
    progress = items(ds, t.PROCEDURE_STEP_PROGRESS_INFORMATION_SEQUENCE)
    item = dict(progress[0]) if progress else {}
    if not first(item, t.PROCEDURE_STEP_CANCELLATION_DATETIME):
        item[t.PROCEDURE_STEP_CANCELLATION_DATETIME] = element("DT", _now_dt())
    for tag in (t.REASON_FOR_CANCELLATION, t.PROCEDURE_STEP_DISCONTINUATION_REASON_CODE_SEQUENCE):
        if tag in info and info[tag].get("Value"):
            item[tag] = info[tag]
    if not items(item, t.PROCEDURE_STEP_DISCONTINUATION_REASON_CODE_SEQUENCE):
        item[t.PROCEDURE_STEP_DISCONTINUATION_REASON_CODE_SEQUENCE] = {
            "vr": "SQ", "Value": [copy.deepcopy(DEFAULT_DISCONTINUATION_REASON)]}
    if t.CONTACT_URI in info:
        item[t.PROCEDURE_STEP_COMMUNICATIONS_URI_SEQUENCE] = {"vr": "SQ", "Value": [
            {k: info[k] for k in (t.CONTACT_URI, t.CONTACT_DISPLAY_NAME) if k in info}]}
    ds[t.PROCEDURE_STEP_PROGRESS_INFORMATION_SEQUENCE] = {"vr": "SQ", "Value": [item, *progress[1:]]}
