"""The audit trail: who did what to which workitem or study, and with what outcome.

``record(conn, ...)`` writes one row on the caller's connection, so an audited change and its
audit row commit (or roll back) together. Event names are the PS3.15 A.5 Audit Event IDs
(DCM codes). A Transaction UID is never recorded.
"""

from .record import (
    AUDIT_LOG_USED,
    INSTANCES_ACCESSED,
    INSTANCES_TRANSFERRED,
    MAJOR_FAILURE,
    MINOR_FAILURE,
    PROCEDURE_RECORD,
    QUERY,
    SERIOUS_FAILURE,
    SUCCESS,
    SYSTEM,
    USER_AUTHENTICATION,
    Actor,
    AuditEvent,
    record,
    record_now,
)

__all__ = [
    "AUDIT_LOG_USED", "INSTANCES_ACCESSED", "INSTANCES_TRANSFERRED", "MAJOR_FAILURE", "MINOR_FAILURE",
    "PROCEDURE_RECORD", "QUERY", "SERIOUS_FAILURE", "SUCCESS", "SYSTEM", "USER_AUTHENTICATION", "Actor",
    "AuditEvent", "record", "record_now",
]
