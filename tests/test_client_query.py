"""The Butler-style where-expression translator (diavo.client.query): every supported form and
the exact ADQL it becomes, and a clear error for everything else. No server needed: the same
forms run against a real server in test_client_archive.py."""
from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.time import Time
from hypothesis import given, settings
from hypothesis import strategies as st

from diavo.client.query import QueryExpressionError, adql_string, datasets_query, order_by_adql, translate_where
from diavo.client.refs import DIFFERENCE_IMAGE, DataId, DatasetRef, Timespan

TUTORIAL_WHERE = ("band.name = :band AND visit.timespan OVERLAPS :timespan AND "
                  "visit_detector_region.region OVERLAPS POINT(:ra, :dec)")


def utc(mjd_tai: float) -> str:
    """ObsCore's t_min/t_max are UTC MJDs: the ADQL form of a TAI MJD."""
    return repr(float(Time(mjd_tai, format="mjd", scale="tai").utc.mjd))


def tutorial_timespan() -> Timespan:
    return Timespan(Time("2024-11-09T00:00:00.0", format="isot", scale="tai"),
                    Time(60624.0, format="mjd", scale="tai"))


def test_tutorial_expression():
    bind = {"band": "r", "timespan": tutorial_timespan(), "ra": 53.125, "dec": -27.740}
    assert translate_where(TUTORIAL_WHERE, bind) == (
        f"lsst_band = 'r' AND (t_min < {utc(60624.0)} AND t_max > {utc(60623.0)}) AND "
        "CONTAINS(POINT('ICRS', 53.125, -27.74), s_region) = 1")


@pytest.mark.parametrize("where, bind, adql", [
    ("band.name = :band", {"band": "r"}, "lsst_band = 'r'"),
    ("band = 'r'", {}, "lsst_band = 'r'"),
    ('band = "g"', {}, "lsst_band = 'g'"),
    ("band != 'r'", {}, "lsst_band <> 'r'"),
    ("instrument = 'LSSTComCam'", {}, "instrument_name = 'LSSTComCam'"),
    ("instrument.name = :i", {"i": "LSSTComCam"}, "instrument_name = 'LSSTComCam'"),
    ("detector = 2", {}, "lsst_detector = 2"),
    ("detector.id >= :d", {"d": np.int64(3)}, "lsst_detector >= 3"),
    ("visit = :v", {"v": 2024110800246}, "lsst_visit = 2024110800246"),
    ("visit.id < 2024110800250", {}, "lsst_visit < 2024110800250"),
    ("day_obs = 20241108", {}, "lsst_day_obs = 20241108"),
    ("physical_filter = 'r_03'", {}, "lsst_filter = 'r_03'"),
    ("detector IN (1, 2, 3)", {}, "lsst_detector IN (1, 2, 3)"),
    ("detector NOT IN (0, 8)", {}, "lsst_detector NOT IN (0, 8)"),
    ("band IN ('g', :b)", {"b": "r"}, "lsst_band IN ('g', 'r')"),
    ("visit IN (:visits)", {"visits": [2024110800246, 2024110800247]},
     "lsst_visit IN (2024110800246, 2024110800247)"),
    ("detector IN (:none)", {"none": []}, "1 = 0"),
    ("2 = detector", {}, "lsst_detector = 2"),
    ("3 < detector", {}, "lsst_detector > 3"),
    ("detector > -1", {}, "lsst_detector > -1"),
    ("visit.exposure_time >= 29.5", {}, "t_exptime >= 29.5"),
    ("band = 'r' AND detector = 2", {}, "lsst_band = 'r' AND lsst_detector = 2"),
    ("band = 'r' OR band = 'g'", {}, "lsst_band = 'r' OR lsst_band = 'g'"),
    ("NOT band = 'r'", {}, "NOT (lsst_band = 'r')"),
    ("(band = 'r' OR band = 'g') AND NOT (detector = 1 OR detector = 2)", {},
     "(lsst_band = 'r' OR lsst_band = 'g') AND NOT (lsst_detector = 1 OR lsst_detector = 2)"),
    ("band = 'r' and not detector in (1) or visit = 5", {},
     "(lsst_band = 'r' AND NOT (lsst_detector IN (1))) OR lsst_visit = 5"),
    ("visit.timespan OVERLAPS :ts", {"ts": Timespan.from_mjd(60623.25, 60623.5)},
     "(t_min < 60623.5 AND t_max > 60623.25)"),
    ("visit.timespan OVERLAPS :ts", {"ts": Timespan.from_mjd(60623.25, None)}, "(t_max > 60623.25)"),
    ("visit.timespan OVERLAPS :ts", {"ts": Timespan(None, None)}, "1 = 1"),
    ("visit.timespan OVERLAPS (T'2024-11-09T00:00:00', T'60624/mjd')", {},
     f"(t_min < {utc(60624.0)} AND t_max > {utc(60623.0)})"),
    (":ts OVERLAPS visit.timespan", {"ts": Timespan.from_mjd(1.0, 2.0)}, "(t_min < 2.0 AND t_max > 1.0)"),
    ("visit.timespan OVERLAPS T'60623.26'", {}, f"(t_min <= {utc(60623.26)} AND t_max > {utc(60623.26)})"),
    ("visit.timespan.begin > T'2024-11-09T00:00:00'", {}, f"t_min > {utc(60623.0)}"),
    ("visit.timespan.end <= :t", {"t": Time(60623.5, format="mjd", scale="tai")}, f"t_max <= {utc(60623.5)}"),
    ("visit_detector_region.region OVERLAPS POINT(53.125, -27.74)", {},
     "CONTAINS(POINT('ICRS', 53.125, -27.74), s_region) = 1"),
    ("visit_detector_region.region OVERLAPS POINT(:ra, :dec)", {"ra": 53, "dec": -27.74 * u.deg},
     "CONTAINS(POINT('ICRS', 53.0, -27.74), s_region) = 1"),
    ("visit_detector_region.region OVERLAPS CIRCLE(53.1, -27.7, 0.05)", {},
     "INTERSECTS(CIRCLE('ICRS', 53.1, -27.7, 0.05), s_region) = 1"),
    ("POINT(1, 2) OVERLAPS visit_detector_region.region", {},
     "CONTAINS(POINT('ICRS', 1.0, 2.0), s_region) = 1"),
    ("band = mine", {"mine": "i"}, "lsst_band = 'i'"),  # a bare bind name, as Butler allows
    ("BAND.NAME = 'r' And Detector = 1", {}, "lsst_band = 'r' AND lsst_detector = 1"),
    ("   ", {}, ""),
])
def test_supported_forms(where, bind, adql):
    assert translate_where(where, bind) == adql


def test_times_compare_as_utc_mjd():
    """Literals are TAI unless marked /utc (Butler's rule); ObsCore holds UTC MJDs, so both
    become UTC MJDs in the ADQL."""
    t = Time("2024-11-09T00:00:00", scale="utc")
    assert translate_where("visit.timespan.begin > :t", {"t": t}) == f"t_min > {float(t.mjd)!r}"
    assert translate_where("visit.timespan.begin > T'2024-11-09T00:00:00/utc'") == f"t_min > {float(t.mjd)!r}"
    assert translate_where("visit.timespan.begin > T'2024-11-09T00:00:00'") == f"t_min > {utc(60623.0)}"


def test_values_are_rerendered_never_pasted():
    # quotes are doubled, whatever the bound text holds
    assert translate_where("band = :b", {"b": "r' OR 1=1 --"}) == "lsst_band = 'r'' OR 1=1 --'"
    assert translate_where("instrument = 'a''b'") == "instrument_name = 'a''b'"
    # numbers come from Python values, not from the expression's text
    assert translate_where("detector = 0002") == "lsst_detector = 2"
    assert translate_where("visit.exposure_time = 3.0e1") == "t_exptime = 30.0"


@pytest.mark.parametrize("where, bind, part", [
    ("band LIKE 'r%'", {}, "LIKE"),
    ("band = 'r' AND", {}, "end of the expression"),
    ("foo = 1", {}, "'foo'"),
    ("visit.region OVERLAPS POINT(1, 2)", {}, "'visit.region'"),
    ("detector = 'two'", {}, "integer"),
    ("detector = 1.5", {}, "integer"),
    ("band = 3", {}, "string"),
    ("band > 'g'", {}, "use = or !="),
    ("band = :missing", {"band": "r"}, ":missing"),
    ("visit.timespan = 3", {}, "only OVERLAPS"),
    ("visit.timespan OVERLAPS :b", {"b": "r"}, ":b"),
    ("detector OVERLAPS 3", {}, "does not support OVERLAPS"),
    ("visit_detector_region.region OVERLAPS BOX(1, 2, 3, 4)", {}, "BOX()"),
    ("visit_detector_region.region OVERLAPS POINT(1)", {}, "2 arguments"),
    ("visit_detector_region.region OVERLAPS POINT(1, 95)", {}, "dec"),
    ("visit_detector_region.region OVERLAPS :r", {"r": 1.0}, "POINT(ra, dec)"),
    ("detector IN (1..5)", {}, "ranges"),
    ("detector = visit", {}, "two fields"),
    ("1 = 1", {}, "dimension field"),
    ("(band = 'r'", {}, "')'"),
    ("band = 'r' visit = 1", {}, "'visit'"),
    ("band = 'r'; DROP TABLE x", {}, "';'"),
    ("T'not a time' < visit.timespan.begin", {}, "T'not a time'"),
    ("detector = :d", {"d": True}, "integer"),
    ("visit.exposure_time = :x", {"x": float("nan")}, "finite"),
    ("detector = :many", {"many": [1, 2]}, "IN"),
    ("band", {}, "comparison"),
])
def test_unsupported_forms_are_clear_errors(where, bind, part):
    with pytest.raises(QueryExpressionError) as info:
        translate_where(where, bind)
    assert isinstance(info.value, ValueError)
    assert part in str(info.value)
    assert info.value.position is None or 0 <= info.value.position <= len(where)


def test_error_points_at_the_part():
    with pytest.raises(QueryExpressionError) as info:
        translate_where("band = 'r' AND visit.region OVERLAPS POINT(1, 2)")
    assert info.value.position == len("band = 'r' AND ")
    assert str(info.value).splitlines()[-1].index("^") - 4 == info.value.position
    with pytest.raises(QueryExpressionError, match="nests too deeply"):
        translate_where("NOT " * 5000 + "band = 'r'")


@pytest.mark.parametrize("terms, adql", [
    (["visit.timespan.begin"], ["t_min"]),
    ("-visit.timespan.begin", ["t_min DESC"]),
    (["visit", "-detector"], ["lsst_visit", "lsst_detector DESC"]),
    (["day_obs", "band", "physical_filter", "visit.timespan.end"],
     ["lsst_day_obs", "lsst_band", "lsst_filter", "t_max"]),
    (None, []),
])
def test_order_by(terms, adql):
    assert order_by_adql(terms) == adql


@pytest.mark.parametrize("term", ["ra", "visit.timespan.begin; DROP", "visit.timespan.middle", "--visit"])
def test_order_by_unsupported(term):
    with pytest.raises(QueryExpressionError, match="order_by"):
        order_by_adql([term])


def test_whole_query():
    q = datasets_query(DIFFERENCE_IMAGE, where="band = 'r'", order_by=["-visit"], limit=5,
                       data_id={"detector": 2, "instrument": "LSSTComCam"})
    assert q.startswith("SELECT TOP 5 obs_publisher_did, access_url, ")
    assert q.endswith(" FROM ivoa.ObsCore WHERE dataproduct_subtype = 'lsst.difference_image' AND "
                      "lsst_detector = 2 AND instrument_name = 'LSSTComCam' AND (lsst_band = 'r') "
                      "ORDER BY lsst_visit DESC, lsst_detector")
    with pytest.raises(QueryExpressionError, match="'tract'"):
        datasets_query(DIFFERENCE_IMAGE, data_id={"tract": 3})
    with pytest.raises(ValueError, match="limit"):
        datasets_query(DIFFERENCE_IMAGE, limit=-1)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text())
def test_any_string_round_trips_as_one_literal(text):
    if "\x00" in text:
        with pytest.raises(QueryExpressionError):
            translate_where("band = :b", {"b": text})
        return
    adql = translate_where("band = :b", {"b": text})
    literal = adql[len("lsst_band = "):]
    assert literal == adql_string(text)
    assert literal[0] == literal[-1] == "'" and literal[1:-1].replace("''", "'") == text
    assert "'" not in literal[1:-1].replace("''", "")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from(list("bandvistre.=!<>()'\":,-0123 TNOIAPLC")), max_size=40))
def test_garbage_is_an_error_or_a_translation(text):
    try:
        out = translate_where(text, {"b": "r"})
    except QueryExpressionError:
        return
    assert isinstance(out, str)


def test_values_and_refs():
    ts = Timespan.from_mjd(60623.0, 60624.0)
    assert ts.overlaps(Timespan.from_mjd(60623.5, None)) and not ts.overlaps(Timespan.from_mjd(60624.0, 60625.0))
    assert ts.contains(Time(60623.2, format="mjd", scale="tai"))
    with pytest.raises(ValueError, match="before"):
        Timespan.from_mjd(2.0, 1.0)
    with pytest.raises(TypeError):
        Timespan(60623.0, None)
    data_id = DataId(physical_filter="r_03", visit=2024110800246, detector=2, instrument="LSSTComCam",
                     band="r", day_obs=20241108)
    assert repr(data_id) == ("{instrument: 'LSSTComCam', detector: 2, visit: 2024110800246, band: 'r', "
                             "day_obs: 20241108, physical_filter: 'r_03'}")
    assert data_id.get("visit") == 2024110800246 and data_id["detector"] == 2
    assert data_id.required == {"instrument": "LSSTComCam", "detector": 2, "visit": 2024110800246}
    ref = DatasetRef("difference_image", data_id)
    assert ref.id == "ivo://diavo.local/dp1?difference_image/2024110800246/2"
    assert ref.datasetType == "difference_image" and ref.datasetType.name == "difference_image"
    assert repr(ref).startswith("DatasetRef(DatasetType('difference_image', {band, instrument, day_obs, "
                                "detector, physical_filter, visit}, ExposureF), {instrument: 'LSSTComCam'")
    with pytest.raises(ValueError, match="visit"):
        DatasetRef("difference_image", {"detector": 2})
