"""Conformance of diavo's Felis files with Rubin's own DP1 and ObsCore schemas.

lsst-felis and lsst-sdm-schemas are in the test extra. They are imported outright, not with
pytest.importorskip: a CI without them must fail here rather than pass without checking.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

import pytest
import yaml
from felis.datamodel import Schema as FelisSchema

from diavo.server.archive.model import DataModel, default_schema_paths, load_model

SDM = importlib.resources.files("lsst.sdm.schemas")


def _rubin(name: str) -> FelisSchema:
    # Rubin's files omit "@id"s and let felis generate them.
    data = yaml.safe_load(SDM.joinpath(name).read_text())
    return FelisSchema.model_validate(data, context={"id_generation": True})


@pytest.fixture(scope="module")
def model() -> DataModel:
    return load_model()


@pytest.fixture(scope="module")
def rubin_dp1() -> FelisSchema:
    return _rubin("dp1.yaml")


@pytest.mark.parametrize("path", default_schema_paths(), ids=lambda p: p.name)
def test_our_files_are_valid_felis(path) -> None:
    data = yaml.safe_load(path.read_text())
    schema = FelisSchema.model_validate(
        data,
        context={"check_description": True, "check_tap_principal": True, "check_tap_table_indexes": True},
    )
    ours = load_model([path]).schemas[0]
    assert schema.name == ours.name
    assert [t.name for t in schema.tables] == [t.name for t in ours.tables]
    for felis_table, table in zip(schema.tables, ours.tables, strict=False):
        assert [c.name for c in felis_table.columns] == list(table.column_names)
        for fc in felis_table.columns:
            col = table.column(fc.name)
            # Our loader and felis agree on the derived VOTable metadata.
            assert col.votable_arraysize == fc.votable_arraysize, (table.name, fc.name)
            assert col.votable_xtype == fc.votable_xtype, (table.name, fc.name)


def _rubin_column(rubin: FelisSchema, table: str, column: str) -> Any:
    tables = {t.name: t for t in rubin.tables}
    assert table in tables, f"Rubin's {rubin.name} has no table {table}"
    columns = {c.name: c for c in tables[table].columns}
    assert column in columns, f"Rubin's {rubin.name}.{table} has no column {column}"
    return columns[column]


def test_dp1_columns_match_rubin(model: DataModel, rubin_dp1: FelisSchema) -> None:
    assert rubin_dp1.name == "dp1"
    ours = model.schema("dp1")
    assert {t.name for t in ours.tables} == {"DiaSource", "DiaObject", "Visit"}
    mismatches = []
    for table in ours.tables:
        for col in table.columns:
            theirs = _rubin_column(rubin_dp1, table.name, col.name)
            got = (col.datatype, col.length, col.unit, col.ucd)
            want = (str(theirs.datatype), theirs.length, theirs.ivoa_unit, theirs.ivoa_ucd)
            if got != want:
                mismatches.append((table.name, col.name, got, want))
            if theirs.votable_arraysize is not None and col.votable_arraysize != theirs.votable_arraysize:
                mismatches.append((table.name, col.name, col.votable_arraysize, theirs.votable_arraysize))
            if not theirs.nullable:
                assert not col.nullable, (table.name, col.name)
    assert mismatches == []


def test_dp1_tables_are_complete(model: DataModel, rubin_dp1: FelisSchema) -> None:
    for rubin_table in rubin_dp1.tables:
        if rubin_table.name in ("DiaSource", "DiaObject", "Visit"):
            ours = model.table(f"dp1.{rubin_table.name}")
            assert set(ours.column_names) == {c.name for c in rubin_table.columns}, rubin_table.name
    assert model.table("dp1.DiaObject").primary_key == ("diaObjectId",)
    assert model.table("dp1.Visit").primary_key == ("visit",)


def test_dp1_descriptions_are_our_own(model: DataModel, rubin_dp1: FelisSchema) -> None:
    same = []
    for table in model.schema("dp1").tables:
        for col in table.columns:
            theirs = (_rubin_column(rubin_dp1, table.name, col.name).description or "").strip().rstrip(".")
            if theirs and theirs.lower() == col.description.strip().rstrip(".").lower():
                same.append(f"{table.name}.{col.name}")
    assert same == []


def test_obscore_rubin_extras_match_rubin(model: DataModel) -> None:
    rubin = _rubin("ivoa_obscore.yaml")
    ours = model.table("ivoa.ObsCore")
    extras = ["dataproduct_subtype", "obs_title", "lsst_visit", "lsst_detector", "lsst_tract", "lsst_patch",
              "lsst_band", "lsst_filter"]
    for name in extras:
        theirs = _rubin_column(rubin, "ObsCore", name)
        col = ours.column(name)
        assert (col.datatype, col.length, col.unit, col.ucd) == (
            str(theirs.datatype), theirs.length, theirs.ivoa_unit, theirs.ivoa_ucd
        ), name
    # Everything Rubin publishes is in ours; ours adds the REC's access_estsize and pol_states.
    rubin_names = {c.name for c in next(t for t in rubin.tables if t.name == "ObsCore").columns}
    assert rubin_names <= set(ours.column_names)
    assert set(ours.column_names) - rubin_names == {"access_estsize", "pol_states", "lsst_day_obs"}
    # Where Rubin and the REC agree on a UCD we must agree too (utype: REC adds obscore:).
    for c in next(t for t in rubin.tables if t.name == "ObsCore").columns:
        col = ours.column(c.name)
        if c.votable_utype:
            assert col.utype == "obscore:" + c.votable_utype, c.name
        assert col.ucd == c.ivoa_ucd, c.name
