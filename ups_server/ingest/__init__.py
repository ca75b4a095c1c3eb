"""Ingest: stored instances (blob files + the studies/series/instances index) and on_store hooks."""
