"""ups-server: a DICOM UPS worklist server (UPS-RS + DIMSE) on PostgreSQL."""

__version__ = "0.1.0"
