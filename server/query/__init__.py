"""Query execution: ADQL text in, result columns out, through the front end and an engine."""
