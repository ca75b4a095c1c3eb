"""N-EVENT-REPORT reaches a receiver that, like dcm4che's ``upsscu -O receive``, accepts the UPS
Event SOP Class only with SCP/SCU Role Selection putting the server in the SCP role (PS3.4
CC.3.1.3: the SCP of UPS Event sends the reports; PS3.7 D.3.3.4: an association requestor acting
as SCP must negotiate that role). Also that a receiver negotiating no roles still gets them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from .event_clients import TIMEOUT, EventReceiver, free_port
from .events_support import GLOBAL, create, subscribe, uid
from .processes import REPO

ROLE_AET = "ROLE_RECV"
PLAIN_AET = "PLAIN_RECV"


class RoleReceiver:
    """``tests/role_receiver.py`` in its own process; its JSON lines read from stdout."""

    def __init__(self, aet: str):
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, "-m", "tests.role_receiver", aet, str(self.port)],
                                        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def next_line(self) -> dict:
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), TIMEOUT)
        assert line, "receiver exited"
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def role_receiver() -> Iterator[RoleReceiver]:
    receiver = RoleReceiver(ROLE_AET)
    yield receiver
    receiver.close()


@pytest.fixture
def plain_receiver() -> Iterator[EventReceiver]:
    with EventReceiver(PLAIN_AET) as receiver:
        yield receiver


@pytest.fixture
def settings(settings, role_receiver, plain_receiver):
    settings.ae_table = {ROLE_AET: role_receiver.address, PLAIN_AET: plain_receiver.address}
    return settings


async def test_event_reaches_receiver_that_requires_role_selection(http, role_receiver):
    assert (await subscribe(http, GLOBAL, ROLE_AET)).status_code == 201
    workitem = uid(901)
    await create(http, workitem)
    while True:  # skip reports about other workitems (none expected)
        line = await role_receiver.next_line()
        assert "rejected" not in line, f"receiver refused the UPS Event context: {line}"
        if line["uid"] == workitem:
            break
    assert line["event_type"] == 1  # UPS State Report (SCHEDULED) to a global subscriber
    # the receiver took the SCU role of UPS Event: the server was the SCP
    assert line["as_scu"] is True and line["as_scp"] is False


async def test_event_reaches_receiver_that_negotiates_no_roles(http, plain_receiver):
    # a receiver ignoring role selection (pynetdicom's defaults) still gets the report
    assert (await subscribe(http, GLOBAL, PLAIN_AET)).status_code == 201
    workitem = uid(902)
    await create(http, workitem)
    event = await plain_receiver.next_for(workitem)
    assert event.event_type == 1
