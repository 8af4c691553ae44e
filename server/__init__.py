"""diavo server: TAP, SIA, DataLink and SODA over a DuckDB archive."""
