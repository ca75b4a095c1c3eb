"""Transport: HTTPS and DIMSE over TLS (a real `ups-server serve`), X-Forwarded-* only from
trusted proxies, and the warning an open server listening beyond loopback logs."""

from __future__ import annotations

import dataclasses
import logging
import ssl

import httpx
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from ups_server.auth.settings import open_mode_warning
from ups_server.config import Settings

from .certificates import make_certificates
from .conftest import free_port
from .processes import serve, stop
from .ups_client import new_uid
from .workitems import DICOM_JSON, new_workitem


def client_context(certs, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certs.ca))
    if with_certificate:
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    return context


def echo(port: int, context: ssl.SSLContext | None) -> bool:
    ae = AE(ae_title="TLS_SCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="UPS_SERVER",
                         tls_args=(context, "127.0.0.1") if context else None)
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return int(status.Status) == 0


async def test_https_and_dimse_over_tls(database_url, tmp_path):
    certs = make_certificates(tmp_path / "certs")
    http_port, tls_port = free_port(), free_port()
    process = serve(database_url, tmp_path, http_port, "--tls-cert", str(certs.server_cert), "--tls-key",
                    str(certs.server_key), "--tls-ca", str(certs.ca), "--dimse-tls-port", str(tls_port), ca=certs.ca)
    try:
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(certs.ca))) as client:
            r = await client.get(f"https://127.0.0.1:{http_port}/health")
            assert r.status_code == 200
            with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the HTTPS port
                await client.get(f"http://127.0.0.1:{http_port}/health", timeout=5)
        assert echo(tls_port, client_context(certs, with_certificate=True))
        assert not echo(tls_port, client_context(certs, with_certificate=False))  # --tls-ca: a client cert
        assert not echo(tls_port, None)  # no TLS on the TLS port
    finally:
        stop(process)


@pytest.fixture
def settings(settings):
    # a proxy at 10.0.0.0/8 is trusted; the test client (127.0.0.1) is not
    return dataclasses.replace(settings, trusted_proxies=["10.0.0.0/8"])


async def test_x_forwarded_headers_of_an_untrusted_client_are_ignored(http, base_url):
    spoof = {"X-Forwarded-Host": "evil.example.org", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}
    uid = new_uid()
    r = await http.post(f"/workitems?workitem={uid}", json=new_workitem(), headers={**spoof, **DICOM_JSON})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{base_url}/workitems/{uid}"
    r = await http.post(f"/workitems/{uid}/subscribers/SPOOF", headers=spoof)
    assert r.status_code == 201
    assert r.headers["content-location"] == base_url.replace("http://", "ws://") + "/subscribers/SPOOF"


def test_open_mode_beyond_loopback_warns(caplog):
    assert open_mode_warning(Settings(host="127.0.0.1")) is None
    assert open_mode_warning(Settings(host="0.0.0.0", auth="oidc", oidc_issuer="https://idp", oidc_audience="x")) \
        is None
    text = open_mode_warning(Settings(host="0.0.0.0", dimse_port=104))
    assert "--auth none" in text and "DIMSE port 104" in text


async def test_an_open_server_logs_the_warning(database_url, tmp_path, caplog):
    from ups_server.db.engine import Database
    from ups_server.server import Server

    settings = Settings(database_url=database_url, data_dir=tmp_path, host="0.0.0.0", dimse_port=0)
    server = Server(settings, Database(settings.database_url, settings.data_dir, 2))
    with caplog.at_level(logging.WARNING, logger="ups_server.server"):
        await server.open()
    try:
        assert any("--auth none on 0.0.0.0" in r.getMessage() for r in caplog.records)
    finally:
        await server.close()
        await server.database.dispose()
