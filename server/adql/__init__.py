"""ADQL 2.1 front end (parser, checker, translator) and spherical geometry for DuckDB."""
