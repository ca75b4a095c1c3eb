"""A real pynetdicom UPS SCU for the tests: one association per calling AE title.

Blocking calls: async tests run them with ``asyncio.to_thread`` so that the server's
loop (which the DIMSE handlers call into) keeps running.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Self

from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import (
    UnifiedProcedureStepPull,
    UnifiedProcedureStepPush,
    UnifiedProcedureStepQuery,
    UnifiedProcedureStepWatch,
    Verification,
)

from ups_server.dicom.dataset import JsonDataset, from_pydicom, to_pydicom

UPS_CLASSES = [UnifiedProcedureStepPush, UnifiedProcedureStepPull, UnifiedProcedureStepWatch,
               UnifiedProcedureStepQuery, Verification]


@dataclass
class Reply:
    status: int
    dataset: JsonDataset | None = None
    affected_uid: str | None = None
    comment: str | None = None


def _reply(status: Dataset | None, ds: Dataset | None = None) -> Reply:
    if status is None or "Status" not in status:
        raise ConnectionError("no response (association aborted or timed out)")
    uid = status.get("AffectedSOPInstanceUID")
    return Reply(int(status.Status), from_pydicom(ds) if ds is not None else None,
                 str(uid) if uid else None, status.get("ErrorComment"))


class UPSClient:
    """An SCU association from ``calling_ae`` to the server at ``host:port``."""

    def __init__(self, host: str, port: int, calling_ae: str = "TEST_SCU", called_ae: str = "UPS_SERVER",
                 jwt: str | None = None):
        self.ae = AE(ae_title=calling_ae)
        self.jwt = jwt  # a User Identity of type 5 (JSON Web Token) to send, if any
        for uid in UPS_CLASSES:
            self.ae.add_requested_context(uid)
        self.host, self.port, self.called_ae = host, port, called_ae
        self.assoc: Association | None = None
        self.last_command: Dataset | None = None  # command set of the last message received

    def _received(self, event: evt.Event) -> None:
        self.last_command = event.message.command_set

    def open(self) -> Self:
        identity = None
        if self.jwt:
            identity = UserIdentityNegotiation()
            identity.user_identity_type, identity.primary_field = 5, self.jwt.encode()
        self.assoc = self.ae.associate(self.host, self.port, ae_title=self.called_ae,
                                       evt_handlers=[(evt.EVT_DIMSE_RECV, self._received)],
                                       ext_neg=[identity] if identity else None)
        if not self.assoc.is_established:
            raise ConnectionError(f"association rejected or failed: {self.assoc}")
        return self

    def close(self) -> None:
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()
        self.assoc = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def a(self) -> Association:
        assert self.assoc is not None, "not open"
        return self.assoc

    def create(self, ds: JsonDataset, uid: str | None = None) -> Reply:
        status, attrs = self.a.send_n_create(to_pydicom(ds), UnifiedProcedureStepPush, uid)
        reply = _reply(status, attrs)
        # pynetdicom's status holds no Affected SOP Instance UID: read it off the N-CREATE-RSP
        assigned = self.last_command.get("AffectedSOPInstanceUID") if self.last_command is not None else None
        reply.affected_uid = str(assigned) if assigned else None
        return reply

    # ``context``: the SOP class whose presentation context carries the request, when it is not
    # ``sop_class`` itself (UPS Push named on the Pull or Watch context: UPS-SOP-02).

    def set(self, uid: str, ds: JsonDataset, sop_class: str = UnifiedProcedureStepPush,
            context: str | None = None) -> Reply:
        status, attrs = self.a.send_n_set(to_pydicom(ds), sop_class, uid, meta_uid=context)
        return _reply(status, attrs)

    def get(self, uid: str, tags: list[int] | None = None, sop_class: str = UnifiedProcedureStepPush,
            context: str | None = None) -> Reply:
        status, attrs = self.a.send_n_get(tags or [], sop_class, uid, meta_uid=context)
        return _reply(status, attrs)

    def action(self, uid: str, action_type: int, info: JsonDataset | None = None,
               sop_class: str = UnifiedProcedureStepPush, context: str | None = None) -> Reply:
        status, reply = self.a.send_n_action(to_pydicom(info) if info else None, action_type, sop_class, uid,
                                             meta_uid=context)
        return _reply(status, reply)

    def find_iter(self, identifier: JsonDataset,
                  model: str = UnifiedProcedureStepPull) -> Iterator[tuple[int, JsonDataset | None]]:
        for status, ds in self.a.send_c_find(to_pydicom(identifier), model):
            if status is None or "Status" not in status:
                raise ConnectionError("no C-FIND response")
            yield int(status.Status), (from_pydicom(ds) if ds is not None else None)

    def find(self, identifier: JsonDataset, model: str = UnifiedProcedureStepPull) -> tuple[int, list[JsonDataset]]:
        """(final status, matches)."""
        matches: list[JsonDataset] = []
        final = -1
        for status, ds in self.find_iter(identifier, model):
            if status in (0xFF00, 0xFF01):
                matches.append(ds or {})
            else:
                final = status
        return final, matches
