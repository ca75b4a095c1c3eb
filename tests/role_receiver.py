"""An N-EVENT-REPORT receiver that negotiates UPS Event as dcm4che's ``upsscu -O receive`` does:
it holds UPS Event in the SCU role only, so it accepts the class only when the requestor
proposes SCP/SCU Role Selection with itself as SCP; otherwise it answers "abstract syntax not
supported" (result 3), as dcm4che's acceptor does for a class it has no SCP capability for.

Run as ``python -m tests.role_receiver AET PORT``: prints ``ready`` once listening, then one JSON
line per N-EVENT-REPORT received (event type, workitem UID, the receiver's role on the context).
It runs in its own process because the negotiation policy is installed into pynetdicom's ACSE
module, which the server under test (in the test process) uses as well.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from pynetdicom import AE, acse, evt
from pynetdicom.sop_class import UnifiedProcedureStepEvent

ABSTRACT_SYNTAX_NOT_SUPPORTED = 0x03
_negotiate = acse.negotiate_as_acceptor


def negotiate_like_dcm4che(rq_contexts, ac_contexts, roles=None):
    """pynetdicom's negotiation, then: a UPS Event context in which this receiver would be the
    SCP (no role selection proposed) is refused, as this receiver is only an SCU of the class."""
    result, reply_roles = _negotiate(rq_contexts, ac_contexts, roles)
    for cx in result:
        if cx.abstract_syntax == UnifiedProcedureStepEvent and cx.result == 0x00 and cx.as_scp:
            cx.result = ABSTRACT_SYNTAX_NOT_SUPPORTED
            cx._as_scu = cx._as_scp = False
    refused = {cx.abstract_syntax for cx in result if cx.result != 0x00}
    return result, [r for r in reply_roles if r.sop_class_uid not in refused]


def on_event(event: Any) -> tuple[int, None]:
    req = event.request
    cx = next(c for c in event.assoc.accepted_contexts if c.context_id == event.context.context_id)
    print(json.dumps({"event_type": int(req.EventTypeID), "uid": str(req.AffectedSOPInstanceUID),
                      "as_scu": cx.as_scu, "as_scp": cx.as_scp}), flush=True)
    return 0x0000, None


def on_rejected_contexts(event: Any) -> None:
    for cx in event.assoc.rejected_contexts:
        print(json.dumps({"rejected": str(cx.abstract_syntax), "result": cx.result}), flush=True)


def main(aet: str, port: int) -> None:
    acse.negotiate_as_acceptor = negotiate_like_dcm4che
    ae = AE(ae_title=aet)
    # pynetdicom's roles here are the *requestor's* roles this acceptor agrees to: the requestor
    # as SCP (it sends N-EVENT-REPORT), never as SCU; so this receiver is the SCU of UPS Event
    ae.add_supported_context(UnifiedProcedureStepEvent, scu_role=False, scp_role=True)
    ae.start_server(("127.0.0.1", port), block=False,
                    evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_event), (evt.EVT_ACCEPTED, on_rejected_contexts)])
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes stdin
    threading.Thread(target=ae.shutdown).start()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
