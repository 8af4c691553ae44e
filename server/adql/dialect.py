"""What differs between the SQL of the engines diavo runs on, behind one interface.

The checker resolves names to relations and columns without writing SQL; the emitter writes SQL
through a ``Dialect``: how identifiers are quoted, how a relation (a stored table, an upload, the
generated TAP_SCHEMA, a CTE) is named, how a column is read, how a FULL JOIN's merged USING column
is spelled. ``DuckDBDialect`` writes today's SQL; Spark and PostgreSQL will add their own.
Engines register uploads and TAP_SCHEMA under the names their dialect gives.
"""
from __future__ import annotations


class Dialect:
    """The ANSI spelling; engines override what they spell otherwise."""

    name = "ansi"

    @staticmethod
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def column(self, source: str, field: str) -> str:
        return f"{self.quote(source)}.{self.quote(field)}"

    def upload_relation(self, name: str) -> str:
        """The (unquoted) relation an engine must hold TAP_UPLOAD.<name> under."""
        return f"tap_upload__{name}"

    def metadata_relation(self, name: str) -> str:
        """The (unquoted) relation an engine must hold TAP_SCHEMA.<name> under: TAP_SCHEMA is
        generated from the data model when the engine opens, so it always describes the running
        code's model."""
        return f"tap_schema__{name.lower()}"

    def relation(self, relation: tuple[str, ...]) -> str:
        """The SQL naming a checked relation: ("table", schema, name), ("upload", name),
        ("metadata", name) or ("cte", alias)."""
        kind = relation[0]
        if kind == "table":
            return f"{self.quote(relation[1])}.{self.quote(relation[2])}"
        if kind == "upload":
            return self.quote(self.upload_relation(relation[1]))
        if kind == "metadata":
            return self.quote(self.metadata_relation(relation[1]))
        if kind == "cte":
            return self.quote(relation[1])
        raise ValueError(f"no relation for {relation!r}")

    @staticmethod
    def coalesce(a: str, b: str) -> str:
        return f"COALESCE({a}, {b})"

    @staticmethod
    def string(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    def parquet(self, files: list[str]) -> str:
        """A relation reading Parquet files, for storages that keep a table so."""
        raise NotImplementedError(f"the {self.name} dialect reads no Parquet files")


class DuckDBDialect(Dialect):
    """DuckDB reads uploads and TAP_SCHEMA as relations registered on the cursor (which works
    on read-only connections)."""

    name = "duckdb"

    def parquet(self, files: list[str]) -> str:
        # hive_partitioning off: HATS's Norder=/Dir=/Npix= directories are not columns of the table.
        return f"read_parquet([{', '.join(self.string(f) for f in files)}], hive_partitioning = false)"


DUCKDB = DuckDBDialect()
