"""The reading page's server side: the worklist listing, skipped reads, reader statistics."""
