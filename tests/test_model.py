"""Tests of diavo.server.archive.model: the Felis YAML files and what is generated from them."""

from __future__ import annotations

from collections import Counter

import duckdb
import pyarrow as pa
import pytest

from diavo.server.archive.model import (
    Column,
    DataModel,
    adql_name,
    default_schema_paths,
    load_model,
    tap_schema_rows,
)
from diavo.server.archive.store import CATALOG_TYPES, catalog_ddl

# ObsCore 1.1 (REC-20170509) mandatory columns, from the REC's TAP_SCHEMA tables of mandatory fields.
# name -> (VOTable datatype, unit, UCD, utype without the obscore: prefix, not null)
OBSCORE_MANDATORY = {
    "dataproduct_type": ("char", None, "meta.code.class", "ObsDataset.dataProductType", False),
    "calib_level": ("int", None, "meta.code;obs.calib", "ObsDataset.calibLevel", True),
    "obs_collection": ("char", None, "meta.id", "DataID.collection", True),
    "obs_id": ("char", None, "meta.id", "DataID.observationID", True),
    "obs_publisher_did": ("char", None, "meta.ref.ivoid", "Curation.publisherDID", True),
    "access_url": ("char", None, "meta.ref.url", "Access.reference", False),
    "access_format": ("char", None, "meta.code.mime", "Access.format", False),
    "access_estsize": ("long", "kbyte", "phys.size;meta.file", "Access.size", False),
    "target_name": ("char", None, "meta.id;src", "Target.name", False),
    "s_ra": ("double", "deg", "pos.eq.ra",
             "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1", False),
    "s_dec": ("double", "deg", "pos.eq.dec",
              "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2", False),
    "s_fov": ("double", "deg", "phys.angSize;instr.fov",
              "Char.SpatialAxis.Coverage.Bounds.Extent.diameter", False),
    "s_region": ("char", None, "pos.outline;obs.field", "Char.SpatialAxis.Coverage.Support.Area", False),
    "s_resolution": ("double", "arcsec", "pos.angResolution", "Char.SpatialAxis.Resolution.Refval.value",
                     False),
    "s_xel1": ("long", None, "meta.number", "Char.SpatialAxis.numBins1", False),
    "s_xel2": ("long", None, "meta.number", "Char.SpatialAxis.numBins2", False),
    "t_min": ("double", "d", "time.start;obs.exposure", "Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
              False),
    "t_max": ("double", "d", "time.end;obs.exposure", "Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
              False),
    "t_exptime": ("double", "s", "time.duration;obs.exposure", "Char.TimeAxis.Coverage.Support.Extent",
                  False),
    "t_resolution": ("double", "s", "time.resolution", "Char.TimeAxis.Resolution.Refval.value", False),
    "t_xel": ("long", None, "meta.number", "Char.TimeAxis.numBins", False),
    "em_min": ("double", "m", "em.wl;stat.min", "Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit", False),
    "em_max": ("double", "m", "em.wl;stat.max", "Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit", False),
    "em_res_power": ("double", None, "spect.resolution", "Char.SpectralAxis.Resolution.ResolPower.refVal",
                     False),
    "em_xel": ("long", None, "meta.number", "Char.SpectralAxis.numBins", False),
    "o_ucd": ("char", None, "meta.ucd", "Char.ObservableAxis.ucd", False),
    "pol_states": ("char", None, "meta.code;phys.polarization", "Char.PolarizationAxis.stateList", False),
    "pol_xel": ("long", None, "meta.number", "Char.PolarizationAxis.numBins", False),
    "facility_name": ("char", None, "meta.id;instr.tel", "Provenance.ObsConfig.Facility.name", False),
    "instrument_name": ("char", None, "meta.id;instr", "Provenance.ObsConfig.Instrument.name", False),
}
RUBIN_OBSCORE_EXTRAS = {
    "dataproduct_subtype", "obs_title", "lsst_visit", "lsst_detector", "lsst_tract", "lsst_patch",
    "lsst_band", "lsst_filter",
}
TAP_SCHEMA_COLUMNS = {  # TAP 1.1 section 4: name -> not null
    "schemas": {"schema_name": True, "utype": False, "description": False, "schema_index": False},
    "tables": {"schema_name": True, "table_name": True, "table_type": True, "utype": False,
               "description": False, "table_index": False},
    "columns": {"table_name": True, "column_name": True, "datatype": True, "arraysize": False,
                "xtype": False, "size": False, "description": False, "utype": False, "unit": False,
                "ucd": False, "indexed": True, "principal": True, "std": True, "column_index": False},
    "keys": {"key_id": True, "from_table": True, "target_table": True, "description": False,
             "utype": False},
    "key_columns": {"key_id": True, "from_column": True, "target_column": True},
}


@pytest.fixture(scope="module")
def model() -> DataModel:
    return load_model()


def test_default_files_are_packaged_and_loaded(model: DataModel) -> None:
    assert all(p.is_file() for p in default_schema_paths())
    assert [s.name for s in model.schemas] == ["ivoa", "dp1", "TAP_SCHEMA"]
    assert [s.schema_index for s in model.schemas] == [0, 1, 2]
    assert load_model() is model  # the packaged model is parsed once
    counts = {t.qualified_name: len(t.columns) for t in model.tables()}
    assert counts == {
        "ivoa.ObsCore": 39,
        "dp1.DiaSource": 87,
        "dp1.DiaObject": 137,
        "dp1.Visit": 15,
        "TAP_SCHEMA.schemas": 4,
        "TAP_SCHEMA.tables": 6,
        "TAP_SCHEMA.columns": 14,
        "TAP_SCHEMA.keys": 5,
        "TAP_SCHEMA.key_columns": 3,
    }


def test_every_table_and_column_is_described(model: DataModel) -> None:
    for table in model.tables():
        assert table.description, table.qualified_name
        assert len(set(table.column_names)) == len(table.columns)
        for col in table.columns:
            assert col.description, f"{table.qualified_name}.{col.name}"
        assert any(c.principal for c in table.columns), table.qualified_name


def test_keys(model: DataModel) -> None:
    assert model.table("dp1.DiaSource").primary_key == ("diaSourceId",)
    assert model.table("dp1.DiaObject").primary_key == ("diaObjectId",)
    assert model.table("dp1.Visit").primary_key == ("visit",)
    fks = {fk.key_id: fk for fk in model.table("dp1.DiaSource").foreign_keys}
    assert {(fk.from_columns, fk.target_table, fk.target_columns) for fk in fks.values()} == {
        (("visit",), "dp1.Visit", ("visit",)),
        (("diaObjectId",), "dp1.DiaObject", ("diaObjectId",)),
    }
    assert all(fk.from_table == "dp1.DiaSource" and fk.description for fk in fks.values())
    source = model.table("dp1.DiaSource")
    assert not source.column("diaSourceId").nullable
    assert source.column("diaSourceId").indexed and source.column("diaObjectId").indexed
    assert not source.column("psfFlux").indexed


def test_lookups_are_case_insensitive_and_helpful(model: DataModel) -> None:
    assert model.table("DP1.diasource") is model.table("dp1.DiaSource")
    assert model.table("dp1.DiaSource").column("PSFFLUX").name == "psfFlux"
    with pytest.raises(KeyError, match="psfFlux"):
        model.table("dp1.DiaSource").column("psfFlx")
    with pytest.raises(KeyError, match="dp1.DiaSource"):
        model.table("dp1.DiaSorce")
    assert model.schema("tap_schema").name == "TAP_SCHEMA"


def test_obscore_mandatory_columns_follow_the_standard(model: DataModel) -> None:
    obscore = model.table("ivoa.ObsCore")
    for name, (datatype, unit, ucd, utype, not_null) in OBSCORE_MANDATORY.items():
        col = obscore.column(name)
        assert col.name == name  # lower case, as ObsCore recommends
        assert col.votable_datatype == datatype, name
        assert col.unit == unit, name
        assert col.ucd == ucd, name
        assert col.utype == "obscore:" + utype, name
        assert col.principal and col.std, name
        if not_null:
            assert not col.nullable, name
    extras = set(obscore.column_names) - set(OBSCORE_MANDATORY)
    assert extras == RUBIN_OBSCORE_EXTRAS | {"lsst_day_obs"}
    for name in extras - {"dataproduct_subtype", "obs_title"}:
        assert not obscore.column(name).std and obscore.column(name).utype is None
    # ADQL types from the REC's TAP_SCHEMA table: CLOB, REGION and BIGINT kbyte.
    assert obscore.column("access_url").datatype == "text"
    assert obscore.column("s_region").votable_xtype == "adql:REGION"
    assert obscore.column("calib_level").datatype == "int"


def test_votable_attrs_of_known_columns(model: DataModel) -> None:
    psf = model.table("dp1.DiaSource").column("psfFlux").votable_attrs()
    assert psf == {
        "name": "psfFlux",
        "datatype": "float",
        "unit": "nJy",
        "description": psf["description"],
    }
    assert psf["description"]
    visit = model.table("dp1.DiaSource").column("visit").votable_attrs()
    assert visit["datatype"] == "long" and visit["ucd"] == "meta.id;obs.image"
    assert "arraysize" not in visit and "unit" not in visit
    region = model.table("ivoa.ObsCore").column("s_region").votable_attrs()
    assert (region["datatype"], region["arraysize"], region["xtype"]) == ("char", "*", "adql:REGION")
    assert region["ucd"] == "pos.outline;obs.field"
    assert region["utype"] == "obscore:Char.SpatialAxis.Coverage.Support.Area"
    mid = model.table("dp1.Visit").column("expMidpt").votable_attrs()
    assert (mid["datatype"], mid["arraysize"], mid["xtype"]) == ("char", "*", "timestamp")
    band = model.table("dp1.DiaSource").column("band").votable_attrs()
    assert band["datatype"] == "char" and "arraysize" not in band  # char(1): a single character
    assert model.table("dp1.Visit").column("physical_filter").votable_arraysize == "*"  # as DP1 says
    assert model.table("ivoa.ObsCore").column("obs_id").votable_arraysize == "128*"
    assert model.table("ivoa.ObsCore").column("access_estsize").votable_attrs()["unit"] == "kbyte"


@pytest.mark.parametrize(
    ("datatype", "length", "arraysize", "expected"),
    [
        ("char", 1, None, None),
        ("char", 32, None, "32"),
        ("string", 64, None, "64*"),
        ("string", 64, "*", "*"),
        ("text", None, None, "*"),
        ("timestamp", None, None, "*"),
        ("unicode", 10, None, "10*"),
        ("double", None, None, None),
    ],
)
def test_arraysize_rules(
    datatype: str, length: int | None, arraysize: str | None, expected: str | None
) -> None:
    col = Column(name="c", datatype=datatype, length=length, arraysize=arraysize)
    assert col.votable_arraysize == expected
    assert col.size == (int(expected.rstrip("*")) if expected and expected != "*" else None)


def test_type_mappings() -> None:
    expected = {
        "boolean": ("boolean", "BOOLEAN", pa.bool_()),
        "byte": ("unsignedByte", "UTINYINT", pa.uint8()),
        "short": ("short", "SMALLINT", pa.int16()),
        "int": ("int", "INTEGER", pa.int32()),
        "long": ("long", "BIGINT", pa.int64()),
        "float": ("float", "REAL", pa.float32()),
        "double": ("double", "DOUBLE", pa.float64()),
        "char": ("char", "VARCHAR", pa.string()),
        "string": ("char", "VARCHAR", pa.string()),
        "unicode": ("unicodeChar", "VARCHAR", pa.string()),
        "text": ("char", "VARCHAR", pa.string()),
        "binary": ("unsignedByte", "BLOB", pa.binary()),
        "timestamp": ("char", "TIMESTAMP", pa.timestamp("us")),
    }
    for datatype, (votable, duck, arrow) in expected.items():
        sized = datatype in ("char", "string", "unicode", "binary")
        col = Column(name="c", datatype=datatype, length=8 if sized else None)
        assert (col.votable_datatype, CATALOG_TYPES[col.datatype], col.arrow_type()) == (votable, duck, arrow)
    with pytest.raises(ValueError, match="datatype"):
        Column(name="c", datatype="varchar")


def _duckdb_reported(duckdb_type: str) -> str:
    return {"REAL": "FLOAT"}.get(duckdb_type, duckdb_type)


def test_ddl_runs_in_duckdb_with_matching_types(model: DataModel) -> None:
    con = duckdb.connect()
    for statement in catalog_ddl(model):
        con.execute(statement)
    for table in model.tables():
        got = con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [table.schema, table.name],
        ).fetchall()
        assert [g[0] for g in got] == list(table.column_names), table.qualified_name
        for (name, data_type, is_nullable), col in zip(got, table.columns, strict=False):
            assert data_type == _duckdb_reported(CATALOG_TYPES[col.datatype]), (table.qualified_name, name)
            assert (is_nullable == "YES") == col.nullable, (table.qualified_name, name)
    pk = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints()"
        " WHERE schema_name = 'dp1' AND table_name = 'DiaSource' AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    assert pk == [(["diaSourceId"],)]
    fk = con.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'FOREIGN KEY'")
    assert fk.fetchall() == [(0,)]
    # Types round-trip through Arrow: a row of the DiaSource shape can be inserted from pyarrow.
    source = model.table("dp1.DiaSource")
    arrow = pa.table(
        {c.name: pa.array([None if c.nullable else 1], type=c.arrow_type()) for c in source.columns}
    )
    con.register("src", arrow)
    con.execute('INSERT INTO dp1."DiaSource" SELECT * FROM src')
    assert con.execute('SELECT "diaSourceId", visit FROM dp1.diasource').fetchall() == [(1, 1)]


def test_ddl_schema_filter(model: DataModel) -> None:
    ddl = catalog_ddl(model, schemas=["DP1"])
    assert ddl[0] == 'CREATE SCHEMA IF NOT EXISTS "dp1"'
    assert len(ddl) == 4 and all('"dp1".' in s for s in ddl[1:])
    assert '"diaSourceId" BIGINT NOT NULL' in ddl[1] and 'PRIMARY KEY ("diaSourceId")' in ddl[1]


def test_tap_schema_rows_are_consistent(model: DataModel) -> None:
    rows = tap_schema_rows(model)
    assert set(rows) == set(TAP_SCHEMA_COLUMNS)
    for name, columns in TAP_SCHEMA_COLUMNS.items():
        table = model.table(f"TAP_SCHEMA.{name}")
        assert set(table.column_names) == set(columns), name
        for col_name, not_null in columns.items():
            assert table.column(col_name).nullable is not not_null, (name, col_name)
        for row in rows[name]:
            assert list(row) == list(table.column_names), name
            assert all(row[c] is not None for c, nn in columns.items() if nn), row

    schemas = {r["schema_name"] for r in rows["schemas"]}
    assert schemas == {"ivoa", "dp1", "TAP_SCHEMA"}
    tables = {r["table_name"]: r for r in rows["tables"]}
    assert len(tables) == len(rows["tables"])
    assert {"ivoa.ObsCore", "dp1.DiaSource", "TAP_SCHEMA.columns"} <= set(tables)
    assert all(r["schema_name"] in schemas and r["table_type"] == "table" for r in tables.values())

    pairs = Counter((r["table_name"], r["column_name"]) for r in rows["columns"])
    assert max(pairs.values()) == 1
    assert all(t in tables for t, _ in pairs)
    indexes: dict[str, list[int]] = {}
    for r in rows["columns"]:
        indexes.setdefault(r["table_name"], []).append(r["column_index"])
        assert r["indexed"] in (0, 1) and r["principal"] in (0, 1) and r["std"] in (0, 1)
        if r["arraysize"] is None:
            assert r["size"] is None
        elif r["arraysize"].rstrip("*"):
            assert r["size"] == int(r["arraysize"].rstrip("*"))
    assert all(len(v) == len(set(v)) for v in indexes.values())
    assert set(indexes) == set(tables)  # every table has columns
    assert ("TAP_SCHEMA.columns", '"size"') in pairs  # reserved word, stored delimited

    keys = {r["key_id"]: r for r in rows["keys"]}
    assert len(keys) == len(rows["keys"])
    assert all(r["from_table"] in tables and r["target_table"] in tables for r in keys.values())
    columns_of = {t: {c for tt, c in pairs if tt == t} for t in tables}
    for r in rows["key_columns"]:
        key = keys[r["key_id"]]
        assert r["from_column"] in columns_of[key["from_table"]]
        assert r["target_column"] in columns_of[key["target_table"]]
    dp1_keys = {k for k in keys if k.startswith("fk_DiaSource")}
    assert dp1_keys == {"fk_DiaSource_Visit", "fk_DiaSource_DiaObject"}
    # TAP 1.1 asks TAP_SCHEMA to declare its own links.
    links = {(r["from_table"], r["target_table"]) for r in keys.values()}
    assert {
        ("TAP_SCHEMA.tables", "TAP_SCHEMA.schemas"),
        ("TAP_SCHEMA.columns", "TAP_SCHEMA.tables"),
        ("TAP_SCHEMA.keys", "TAP_SCHEMA.tables"),
        ("TAP_SCHEMA.key_columns", "TAP_SCHEMA.keys"),
    } <= links

    by_name = {(r["table_name"], r["column_name"]): r for r in rows["columns"]}
    psf = by_name[("dp1.DiaSource", "psfFlux")]
    assert (psf["datatype"], psf["unit"], psf["arraysize"], psf["principal"]) == ("float", "nJy", None, 1)


def test_tap_schema_rows_load_into_the_generated_tables(model: DataModel) -> None:
    """The generated rows fit the generated TAP_SCHEMA tables, primary keys included."""
    con = duckdb.connect()
    for statement in catalog_ddl(model, schemas=["TAP_SCHEMA"]):
        con.execute(statement)
    for name, rows in tap_schema_rows(model).items():
        cols = list(rows[0])
        placeholders = ", ".join("?" for _ in cols)
        quoted = ", ".join(f'"{c}"' for c in cols)
        con.executemany(
            f'INSERT INTO "TAP_SCHEMA"."{name}" ({quoted}) VALUES ({placeholders})',
            [list(r.values()) for r in rows],
        )
    orphans = con.execute(
        'SELECT count(*) FROM "TAP_SCHEMA".columns c'
        ' LEFT JOIN "TAP_SCHEMA".tables t USING (table_name) WHERE t.table_name IS NULL'
    ).fetchall()
    assert orphans == [(0,)]
    (n,) = con.execute('SELECT count(*) FROM "TAP_SCHEMA".columns').fetchall()
    assert n[0] == sum(len(t.columns) for t in model.tables())


def test_adql_name() -> None:
    assert adql_name("psfFlux") == "psfFlux"
    assert adql_name("dec") == "dec"  # DEC is not reserved in ADQL
    assert adql_name("size") == '"size"'
    assert adql_name("Select") == '"Select"'
    assert adql_name("_x") == '"_x"'


def test_load_model_from_explicit_paths(tmp_path) -> None:
    path = tmp_path / "mini.yaml"
    path.write_text(
        """
name: demo
"@id": "#demo"
description: A small schema.
version: {current: "2.0"}
tables:
- name: T
  "@id": "#T"
  description: A table.
  primaryKey: ["#T.a", "#T.b"]
  columns:
  - {name: a, "@id": "#T.a", datatype: int, description: first}
  - {name: b, "@id": "#T.b", datatype: char, length: 4, description: second, tap:principal: 1}
"""
    )
    model = load_model([path])
    (schema,) = model.schemas
    assert (schema.name, schema.version, schema.schema_index) == ("demo", "2.0", 0)
    table = model.table("demo.t")
    assert table.primary_key == ("a", "b")
    assert not table.column("a").nullable and table.column("a").indexed
    assert table.column("b").votable_arraysize == "4"
    assert tap_schema_rows(model)["columns"][1]["column_index"] == 2  # position when not given
