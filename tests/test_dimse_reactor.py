"""The quiet acceptor reactor (ups_server/dimse/reactor.py): installed on accepted associations,
serves requests, and ends the association on release and on abort."""

from __future__ import annotations

import asyncio

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from ups_server.dimse import reactor

pytestmark = pytest.mark.dimse


async def _until(condition) -> None:
    """Wait for a condition of the server (not for a time)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


def _server_side(server, calling: str):
    return [a for a in server.dimse.ae.active_associations if a.requestor.ae_title == calling]


@pytest.mark.parametrize("ending", ["release", "abort"])
async def test_quiet_reactor_serves_and_ends(server, ending):
    ae = AE(ae_title=f"R_{ending.upper()}")
    ae.add_requested_context(Verification)
    assoc = await asyncio.to_thread(ae.associate, *server.dimse.address, ae_title="UPS_SERVER")
    assert assoc.is_established
    await _until(lambda: _server_side(server, ae.ae_title))
    accepted = _server_side(server, ae.ae_title)[0]
    assert accepted._run_reactor.__func__ is reactor._run_reactor
    for _ in range(3):
        assert (await asyncio.to_thread(assoc.send_c_echo)).Status == 0x0000
    await asyncio.to_thread(assoc.release if ending == "release" else assoc.abort)
    assert assoc.is_released if ending == "release" else assoc.is_aborted
    await _until(lambda: not _server_side(server, ae.ae_title))
    assert (accepted.is_released if ending == "release" else accepted.is_aborted)
