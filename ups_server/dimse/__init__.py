"""DIMSE front-end: pynetdicom handlers (threads) over the async services."""
