"""Retrieving studies from archives (C-FIND / C-MOVE / C-GET as SCU), as jobs in PostgreSQL."""
