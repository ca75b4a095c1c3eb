"""Settings: defaults < YAML file (--config / UPS_CONFIG) < environment (UPS_*) < command-line flags."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml


@dataclass
class Settings:
    host: str = "127.0.0.1"
    http_port: int = 8080
    base_path: str = "/dicom-web"
    data_dir: Path = Path("./ups-data")
    blob_store: str | None = None  # file://PATH or s3://BUCKET/PREFIX; None: <data_dir>/blobs
    database_url: str | None = None
    migrate: bool = True
    log_level: str = "INFO"
    log_format: str = "text"  # text | json
    # DIMSE (C-STORE, C-ECHO, UPS SOP classes)
    dimse_port: int | None = 11112
    ae_title: str = "UPS_SERVER"
    allowed_aes: list[str] = field(default_factory=list)  # empty: any calling AE
    # rules (rules/*.yaml); None: the bundled rules/double-reading.yaml
    rules: Path | None = None
    # AE title -> "host:port" for N-EVENT-REPORT delivery and retrieve destinations
    ae_table: dict[str, str] = field(default_factory=dict)
    worklist_label: str = "UPS_SERVER"
    db_pool_size: int = 20
    workers: int = 1  # HTTP worker processes (serve --workers N)
    # subscriptions and events (issue 5)
    event_replay_seconds: int = 300
    event_queue_size: int = 1000
    purge_completed_after: int = -1
    purge_canceled_after: int = -1
    housekeeping_interval: int = 60
    blob_orphan_grace: int = 3600
    # identity and access (issue 10)
    auth: str = "none"  # none | oidc
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_roles_claim: str = "realm_access.roles"
    oidc_worklists_claim: str = "worklists"
    oidc_client_id: str | None = None
    ae_roles: dict[str, str] = field(default_factory=dict)  # AE title -> "role[+role...]"
    trusted_proxies: list[str] = field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    dimse_tls_port: int | None = None
    # archives studies are retrieved from (issue 14), in order: the first is the primary
    archives: list[str] = field(default_factory=list)
    retrieve_attempts: int = 5
    retrieve_retry_seconds: int = 30
    # the reading page (/ui/)
    viewer_url: str | None = None  # e.g. https://viewer/viewer?StudyInstanceUIDs={StudyInstanceUID}
    skip_hold: int = 3600
    # limits on what a client may send or ask for (issue 11)
    max_body_size: int = 16 * 2**20
    max_stow_part_size: int = 2**30
    max_inflated_size: int = 2**30
    max_inflate_ratio: int = 100
    json_max_depth: int = 16
    json_max_elements: int = 100_000
    search_page_size: int = 1000
    search_max_page_size: int = 10_000
    max_associations_per_ae: int = 16

    HELP: ClassVar[dict[str, str]] = {
        "host": "interface to listen on for HTTP",
        "http_port": "HTTP port of the DICOMweb (UPS-RS, STOW/QIDO/WADO) service",
        "base_path": "path prefix of the DICOMweb service",
        "data_dir": "directory for the embedded PostgreSQL and the stored instances",
        "database_url": "PostgreSQL URL (postgresql://user:pass@host/db); none: embedded PostgreSQL in the data dir",
        "blob_store": "where instances are stored: file://PATH or s3://BUCKET/PREFIX (S3 configured by "
                      "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION); "
                      "none: <data-dir>/blobs",
        "migrate": "apply database migrations at start",
        "log_level": "DEBUG, INFO, WARNING or ERROR",
        "log_format": "text, or json: one object per line with the request id, principal and workitem / "
                      "study UID of the request being served",
        "dimse_port": "DIMSE port for C-STORE, C-ECHO and the UPS SOP classes (0: off)",
        "ae_title": "the server's AE title",
        "allowed_aes": "calling AE titles accepted at association (comma list; empty: all)",
        "rules": "rule file or directory (default: the bundled rules/double-reading.yaml)",
        "ae_table": "known AEs as AET=host:port, comma separated (event receivers)",
        "worklist_label": "Worklist Label given to workitems created without one",
        "db_pool_size": "database connections per process: opened as requests need them, up to twice this many, and kept open",
        "workers": "HTTP worker processes sharing the HTTP port; with more than one, the parent process starts "
                   "the embedded PostgreSQL and applies the migrations once, then supervises the workers; "
                   "the first worker alone also serves DIMSE",
        "event_replay_seconds": "seconds an undelivered event is kept for a WebSocket that reconnects "
                                "(and DIMSE delivery retried); older events are pruned",
        "event_queue_size": "events waiting per WebSocket before the connection is dropped as too slow",
        "purge_completed_after": "seconds after which a COMPLETED workitem without a deletion lock is "
                                 "deleted (-1: never; 0: at the next housekeeping run)",
        "purge_canceled_after": "seconds after which a CANCELED workitem without a deletion lock is "
                                "deleted (-1: never; 0: at the next housekeeping run)",
        "housekeeping_interval": "seconds between purge / outbox pruning runs (0: off)",
        "blob_orphan_grace": "seconds after which housekeeping removes a stored object whose index row never "
                             "committed (a crash between the two), and spool files a crashed request left",
        "auth": "none (open: one workstation; every client has every role) or oidc (bearer tokens of "
                "--oidc-issuer; DIMSE: User Identity JWT or --ae-roles)",
        "oidc_issuer": "OIDC issuer URL (its /.well-known/openid-configuration names the signing keys)",
        "oidc_audience": "audience a token's aud claim must contain (the server's client id at the issuer)",
        "oidc_roles_claim": "dotted path of the claim holding the roles reader, arbitrator, admin, ingest",
        "oidc_worklists_claim": "claim listing the Worklist Labels a user may see (absent: all)",
        "oidc_client_id": "public OIDC client id the browser page signs in with",
        "ae_roles": "roles of DIMSE calling AEs without a user identity, AET=role[+role],... "
                    "(e.g. MODALITY1=ingest,PACS=ingest)",
        "trusted_proxies": "CIDRs whose X-Forwarded-* headers are honoured (comma list; others are ignored)",
        "tls_cert": "PEM certificate (chain) for HTTPS and DIMSE TLS",
        "tls_key": "PEM private key of --tls-cert",
        "tls_ca": "PEM CA bundle: DIMSE TLS clients must present a certificate it signed",
        "dimse_tls_port": "DIMSE over TLS port (needs --tls-cert/--tls-key; 0 or empty: off)",
        "archives": "an archive to retrieve studies from, NAME=AET@host:port[?method=move|get][&associations=N] "
                    "(repeat --archive, in order: the first is the primary; env: comma list)",
        "retrieve_attempts": "attempts of a retrieve job while an archive is unreachable before it fails",
        "retrieve_retry_seconds": "seconds before the first retry of a retrieve job (doubling after each)",
        "viewer_url": "viewer link of the reading page's Open button, {StudyInstanceUID} (also {AccessionNumber}, "
                      "{PatientID}) filled in, e.g. https://viewer/viewer?StudyInstanceUIDs={StudyInstanceUID} "
                      "(unset: no Open button)",
        "skip_hold": "seconds during which claim-next does not offer a skipped read to the reader who skipped it",
        "max_body_size": "largest DICOM JSON request body in bytes (413 beyond, before it is read when "
                         "Content-Length tells)",
        "max_stow_part_size": "largest part of a STOW-RS request in bytes (that part fails with A700, the "
                              "others are stored)",
        "max_inflated_size": "largest size in bytes an instance in a deflated transfer syntax may inflate to",
        "max_inflate_ratio": "largest inflated / deflated size ratio of an instance in a deflated transfer syntax",
        "json_max_depth": "deepest nesting of sequences in a DICOM JSON request",
        "json_max_elements": "most elements (nested ones included) in a DICOM JSON request",
        "search_page_size": "results of a Search / QIDO-RS without limit (a Warning says when more exist)",
        "search_max_page_size": "largest limit of a Search / QIDO-RS (a larger one is lowered to it)",
        "max_associations_per_ae": "DIMSE associations open at once from one calling AE title (0: no limit)",
    }

    def __post_init__(self) -> None:
        from .auth.settings import problems
        from .retrieve.archives import parse_archives

        found = problems(self)
        try:
            parse_archives(self.archives)
        except ValueError as exc:
            found.append(str(exc))
        if found:
            raise ValueError("; ".join(found))

    @classmethod
    def env_name(cls, name: str) -> str:
        return "UPS_" + name.upper()

    @classmethod
    def load(cls, config_file: Path | None = None, overrides: dict[str, Any] | None = None,
             environ: dict[str, str] | None = None) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        config_file = config_file or (Path(environ["UPS_CONFIG"]) if environ.get("UPS_CONFIG") else None)
        if config_file:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{config_file}: expected a mapping of settings")
            values.update({k.replace("-", "_"): v for k, v in loaded.items()})
        for f in dataclasses.fields(cls):
            if cls.env_name(f.name) in environ:
                values[f.name] = environ[cls.env_name(f.name)]
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = cls(**{k: _coerce(known[k].type, k, v) for k, v in values.items()})
        if settings.workers < 1:
            raise ValueError(f"setting workers: {settings.workers} is not a positive number of processes")
        if settings.log_format not in ("text", "json"):
            raise ValueError(f"setting log_format: {settings.log_format!r} is not text or json")
        if settings.blob_store:
            from .ingest.blobs import parse_blob_url

            parse_blob_url(settings.blob_store)  # a ValueError names the expected forms
        return settings


def _coerce(type_: Any, name: str, value: Any) -> Any:
    kind = str(type_)
    if value is None:
        return None
    try:
        if "bool" in kind:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if "int" in kind:
            return int(value)
        if "Path" in kind:
            return Path(value)
        if kind.startswith("list"):
            return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
        if kind.startswith("dict"):
            if isinstance(value, str):
                pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
                return {k.strip(): v.strip() for k, v in pairs}
            return dict(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"setting {name}: {value!r} is not valid ({exc})") from None
    return value
