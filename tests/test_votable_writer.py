"""The streaming VOTable writer, checked value by value against astropy's reader."""
from __future__ import annotations

import datetime as dt
import io
import math
import tracemalloc
import warnings

import numpy as np
import pyarrow as pa
import pytest
from astropy.io.votable import parse

from diavo.server.output import error_votable, write_votable
from diavo.server.output.votable import VOTABLE_NS

NAN = float("nan")
TS = [dt.datetime(2024, 11, 5, 3, 4, 5, 123456), None, dt.datetime(1999, 12, 31, 23, 59, 59),
      dt.datetime(2025, 1, 1), dt.datetime(2000, 2, 29, 12, 0, 0, 1)]

ROWS = {
    "id": ([1, -9223372036854775807, None, 9223372036854775807, 0], pa.int64()),
    "small": ([1, -32768, 32767, None, 0], pa.int16()),
    "i32": ([2147483647, None, -2147483648, 5, 6], pa.int32()),
    "tiny": ([0, 255, None, 7, 128], pa.uint8()),
    "mag": ([0.1, NAN, None, 1e-300, -1.7976931348623157e308], pa.float64()),
    "flux": ([1 / 3, float("inf"), -float("inf"), None, 3.4e38], pa.float32()),
    "flag": ([True, False, None, True, False], pa.bool_()),
    "label": (['a<b>&"c"', "", None, "plain", "x\ty"], pa.string()),
    "name": (["Zoë", "日本語 ☃", None, "<&>", "ascii"], pa.large_string()),
    "code": (["A", "B", None, "&", "z"], pa.string()),
    "obs_time": (TS, pa.timestamp("us")),
    "pos": ([[10.5, -20.25], None, [0.0, 90.0], [359.999999999, -89.5], [1 / 3, 2 / 3]],
            pa.list_(pa.float64())),
    "region": ([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [], None, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 7, 8],
                [NAN, 1.0, 2.0, 3.0, 4.0, 5.0]], pa.list_(pa.float64())),
    "nothing": ([None] * 5, pa.float64()),
    "nothing_s": ([None] * 5, pa.string()),
}

COLUMNS = [
    {"name": "id", "datatype": "long", "ucd": "meta.id;meta.main",
     "description": "Unique <id> & key"},
    {"name": "small", "datatype": "short"},
    {"name": "i32", "datatype": "int", "unit": "count"},
    {"name": "tiny", "datatype": "unsignedByte"},
    {"name": "mag", "datatype": "double", "unit": "mag", "ucd": "phot.mag",
     "utype": "obscore:Char.Foo"},
    {"name": "flux", "datatype": "float", "unit": "nJy"},
    {"name": "flag", "datatype": "boolean"},
    {"name": "label", "datatype": "char", "arraysize": "*"},
    {"name": "name", "datatype": "unicodeChar", "arraysize": "*"},
    {"name": "code", "datatype": "char", "arraysize": "1"},
    {"name": "obs_time", "datatype": "char", "arraysize": "*", "xtype": "timestamp"},
    {"name": "pos", "datatype": "double", "arraysize": "2", "xtype": "point", "unit": "deg"},
    {"name": "region", "datatype": "double", "arraysize": "*", "xtype": "polygon",
     "unit": "deg"},
    {"name": "nothing", "datatype": "double"},
    {"name": "nothing_s", "datatype": "char", "arraysize": "*", "description": ""},
]


def make_batches(split=(2, 3)):
    table = pa.table({k: pa.array(v, t) for k, (v, t) in ROWS.items()})
    out, start = [], 0
    for n in split:
        out.extend(table.slice(start, n).to_batches())
        start += n
    return out


def render(encoding, split=(2, 3), **kw):
    buf = io.BytesIO()
    n = write_votable(make_batches(split), COLUMNS, buf, encoding=encoding, **kw)
    return n, buf.getvalue()


def read(data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # any astropy VOTable warning fails the test
        return parse(io.BytesIO(data), verify="exception")


def ts_text(t):
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.%f")


def same_float(got, want, masked):
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return masked or math.isnan(got)
    return not masked and got == want


# One-row chunks give every variable-length column one length per chunk (BINARY2 then writes
# it as a fixed block); the (2, 3) split mixes both kinds of chunk.
@pytest.mark.parametrize("split", [(2, 3), (1, 1, 1, 1, 1)])
@pytest.mark.parametrize("encoding", ["tabledata", "binary2"])
def test_values_round_trip_through_astropy(encoding, split):
    n, data = render(encoding, split)
    assert n == 5
    table = read(data).get_first_table()
    arr = table.array
    assert list(arr.dtype.names) == [c["name"] for c in COLUMNS]
    for name, (values, typ) in ROWS.items():
        col = arr[name]
        mask = np.ma.getmaskarray(col)
        for i, want in enumerate(values):
            got, masked = col.data[i], bool(np.all(mask[i]))
            if name in ("mag", "flux", "nothing"):
                if typ == pa.float32() and want is not None and math.isfinite(want):
                    want = float(np.float32(want))
                assert same_float(float(got), want, masked), (name, i, got, want)
            elif name == "obs_time":
                if want is None:
                    assert masked or got == "", (name, i, got)
                else:
                    assert not masked and got == ts_text(want), (name, i, got)
            elif name in ("label", "name", "code", "nothing_s"):
                if want is None:
                    assert masked or got == "", (name, i, got)
                else:
                    assert got == want, (name, i, got, want)
            elif name in ("pos", "region"):
                if want is None:
                    assert masked or len(np.atleast_1d(got)) == 0 or np.all(
                        np.ma.getmaskarray(got)), (name, i, got)
                    continue
                got = np.ma.filled(np.ma.asarray(got, dtype=float), np.nan)
                assert got.shape == (len(want),), (name, i, got)
                np.testing.assert_array_equal(got, np.array(want, dtype=float))
            else:                                              # ints, bools
                if want is None:
                    assert masked, (name, i, got)
                else:
                    assert not masked and got == want, (name, i, got, want)


@pytest.mark.parametrize("encoding", ["tabledata", "binary2"])
def test_field_metadata_and_infos(encoding):
    _, data = render(encoding, infos=[("provider", "diavo")],
                     resource_infos=[("standardID", "ivo://ivoa.net/std/TAP"),
                                     {"name": "QUERY", "value": "SELECT 1", "content": "a<b"}])
    vot = read(data)
    assert vot.version == "1.4"
    assert data.decode().count(f'xmlns="{VOTABLE_NS}"') == 1
    assert [i.name for i in vot.infos] == ["provider"]
    res = vot.resources[0]
    assert res.type == "results"
    infos = [(i.name, i.value) for i in res.infos]
    assert infos[0] == ("QUERY_STATUS", "OK")
    assert ("standardID", "ivo://ivoa.net/std/TAP") in infos
    assert res.infos[2].content == "a<b"
    assert not any(i.value == "OVERFLOW" for i in res.infos)
    table = res.tables[0]
    fields = {f.name: f for f in table.fields}
    for col in COLUMNS:
        f = fields[col["name"]]
        assert f.datatype == col["datatype"]
        for key in ("unit", "ucd", "utype", "xtype", "arraysize"):
            want = col.get(key)
            got = getattr(f, key)
            if key == "unit" and got is not None:
                got = got.to_string(format="vounit") if hasattr(got, "to_string") else str(got)
            assert (got or None) == want, (col["name"], key, got, want)
        assert (f.description or "") == (col.get("description") or "")
    # the writer leaves out empty attributes and DESCRIPTIONs entirely
    assert '<FIELD name="small" datatype="short"/>' in data.decode()
    text = data.decode()
    assert text.index('value="OK"') < text.index("<TABLE>")


@pytest.mark.parametrize("encoding", ["tabledata", "binary2"])
def test_overflow_info_after_table(encoding):
    _, data = render(encoding, overflow=True)
    text = data.decode()
    assert text.index("</TABLE>") < text.index('<INFO name="QUERY_STATUS" value="OVERFLOW"/>')
    res = read(data).resources[0]
    assert [i.value for i in res.infos if i.name == "QUERY_STATUS"] == ["OK", "OVERFLOW"]


def test_tabledata_text_forms():
    _, data = render("tabledata")
    text = data.decode()
    assert "<TD>a&lt;b&gt;&amp;\"c\"</TD>" in text
    assert "<TD>2024-11-05T03:04:05.123456</TD>" in text
    assert "<TD>1999-12-31T23:59:59.000000</TD>" in text
    assert "<TD>NaN</TD>" in text and "<TD>+Inf</TD>" in text and "<TD>-Inf</TD>" in text
    assert "<TD>0.33333334</TD>" in text                  # float32: shortest repr
    assert "<TD>0.3333333333333333 0.6666666666666666</TD>" in text   # double array
    assert "<TD>1e-300</TD>" in text and "<TD>-1.7976931348623157e+308</TD>" in text
    assert "<TD>10.5 -20.25</TD>" in text
    assert "<TD>T</TD>" in text and "<TD>F</TD>" in text
    assert "<TD></TD>" in text


@pytest.mark.parametrize("encoding", ["tabledata", "binary2"])
def test_empty_result_is_metadata_only(encoding):
    buf = io.BytesIO()
    assert write_votable([], COLUMNS, buf, encoding=encoding, overflow=True) == 0
    vot = read(buf.getvalue())
    table = vot.get_first_table()
    assert len(table.array) == 0 and len(table.fields) == len(COLUMNS)


@pytest.mark.parametrize("encoding", ["tabledata", "binary2"])
def test_many_batches_and_base64_carry(encoding):
    """Odd-sized batches make the base64 stream carry partial groups between chunks."""
    rng = np.random.default_rng(1)
    batches, want_i, want_d, want_s = [], [], [], []
    for size in (1, 7, 0, 56, 58, 1000, 3):
        i = rng.integers(-2**62, 2**62, size)
        d = rng.normal(size=size)
        s = [("é" * int(k)) + "x" for k in rng.integers(0, 5, size)]
        batches.append(pa.record_batch([pa.array(i), pa.array(d), pa.array(s)],
                                       names=["i", "d", "s"]))
        want_i += list(i)
        want_d += list(d)
        want_s += s
    cols = [{"name": "i", "datatype": "long"}, {"name": "d", "datatype": "double"},
            {"name": "s", "datatype": "unicodeChar", "arraysize": "*"}]
    buf = io.BytesIO()
    assert write_votable(iter(batches), cols, buf, encoding=encoding) == len(want_i)
    arr = read(buf.getvalue()).get_first_table().array
    np.testing.assert_array_equal(arr["i"].data, want_i)
    np.testing.assert_array_equal(arr["d"].data, want_d)
    assert list(arr["s"].data) == want_s


@pytest.mark.parametrize("encoding", ["tabledata", "binary2"])
def test_error_during_streaming_closes_document(encoding):
    def failing():
        yield make_batches()[0]
        raise RuntimeError("engine <died>")
    buf = io.BytesIO()
    with pytest.raises(RuntimeError):
        write_votable(failing(), COLUMNS, buf, encoding=encoding)
    res = read(buf.getvalue()).resources[0]
    status = [i for i in res.infos if i.name == "QUERY_STATUS"]
    assert [i.value for i in status] == ["OK", "ERROR"]
    assert "engine <died>" in status[1].content
    assert len(res.tables[0].array) == 2


def test_error_votable():
    data = error_votable('bad ADQL near "<&>"')
    vot = read(data)
    res = vot.resources[0]
    assert res.type == "results" and not res.tables
    assert [(i.name, i.value) for i in res.infos] == [("QUERY_STATUS", "ERROR")]
    assert res.infos[0].content == 'bad ADQL near "<&>"'
    assert read(error_votable("")).resources[0].infos[0].content    # never empty


def test_rejects_unknown_encoding():
    with pytest.raises(ValueError):
        write_votable([], COLUMNS, io.BytesIO(), encoding="fits")


class CountingSink(io.RawIOBase):
    """Discards the output; records its size and Arrow's live allocations at each write
    (tracemalloc sees numpy and Python memory, not Arrow's own pool)."""

    def __init__(self):
        self.size = 0
        self.arrow_peak = 0

    def writable(self):
        return True

    def write(self, b):
        n = memoryview(b).nbytes
        self.size += n
        self.arrow_peak = max(self.arrow_peak, pa.total_allocated_bytes())
        return n


COLS5 = [{"name": "id", "datatype": "long"}, {"name": "ra", "datatype": "double"},
         {"name": "dec", "datatype": "double"}, {"name": "mag", "datatype": "float"},
         {"name": "band", "datatype": "char", "arraysize": "1"}]


def five_column_batches(n, step=50_000):
    for start in range(0, n, step):
        ids = np.arange(start, start + step, dtype=np.int64)
        yield pa.record_batch([
            pa.array(ids), pa.array(ids * 1e-4), pa.array(-ids * 1e-5),
            pa.array((ids % 1000).astype(np.float32) / 7),
            pa.array(np.array(list("ugrizy"))[ids % 6])],
            names=[c["name"] for c in COLS5])


def stream_peak(n, encoding):
    sink = CountingSink()
    base = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        rows = write_votable(five_column_batches(n), COLS5, sink, encoding=encoding)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == n
    return sink.size, peak, sink.arrow_peak - base


@pytest.mark.parametrize("encoding", ["tabledata", "binary2"])
def test_million_rows_stream_in_constant_memory(encoding):
    stream_peak(50_000, encoding)              # warm-up: first use imports and caches things
    size, peak, arrow_peak = stream_peak(1_000_000, encoding)
    assert size > 30_000_000                                # the whole document
    # Python/numpy peak and Arrow's live memory stay a small fraction of the output ...
    assert peak < size / 4, (peak, size)
    assert arrow_peak < size / 4, (arrow_peak, size)
    # ... and do not grow with the row count.
    small_size, small_peak, _ = stream_peak(200_000, encoding)
    assert size > 4.5 * small_size
    assert peak < 1.5 * small_peak + 1_000_000, (peak, small_peak)


@pytest.mark.parametrize("encoding", ["tabledata", "binary2"])
def test_text_that_xml_cannot_carry(encoding):
    """Control characters (illegal in XML 1.0) become U+FFFD in TABLEDATA; CR survives."""
    batch = pa.record_batch([pa.array(["bell\x07", "cr\r\nlf", "tab\tok"])], names=["s"])
    buf = io.BytesIO()
    write_votable([batch], [{"name": "s", "datatype": "unicodeChar", "arraysize": "*"}], buf,
                  encoding=encoding)
    got = list(read(buf.getvalue()).get_first_table().array["s"].data)
    first = "bell\ufffd" if encoding == "tabledata" else "bell\x07"
    assert got == [first, "cr\r\nlf", "tab\tok"]


def test_field_headers_kept_per_column_list_follow_the_metadata():
    """The FIELDs are reused for a repeated column list, and any changed attribute shows."""
    first, again = render("tabledata")[1], render("tabledata")[1]
    assert first == again
    changed = [dict(c) for c in COLUMNS]
    changed[4]["unit"] = "nJy"
    changed[0]["description"] = "another text"
    buf = io.BytesIO()
    write_votable(make_batches(), changed, buf)
    text = buf.getvalue().decode()
    assert 'name="mag" datatype="double" unit="nJy"' in text and "another text" in text
    assert "Unique &lt;id&gt; &amp; key" not in text
    assert first.decode().count("<FIELD") == text.count("<FIELD") == len(COLUMNS)
