"""TAP_UPLOAD: the UPLOAD parameter, VOTable/CSV reading, URL fetching over real HTTP on
127.0.0.1, and queries on uploaded tables through the ADQL translator and DuckDB on the demo
archive (the round trip taplint's UPL stage makes, and a TOPCAT-style cross-match)."""
from __future__ import annotations

import base64
import datetime as dt
import http.server
import io
import threading
import warnings

import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits
from astropy.io.votable import parse as parse_votable
from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile

from diavo.server.adql.errors import ADQLError
from diavo.server.archive import store
from diavo.server.archive.model import load_model
from diavo.server.engine import duckdb_functions
from diavo.server.errors import TooLarge, UsageFault
from diavo.server.output.votable import write_votable
from diavo.server.params import Params
from diavo.server.query.executor import translate
from diavo.server.query.uploads import fetch_url, load_uploads
from diavo.server.sql.duckdb_dialect import DUCKDB

MODEL = load_model()
_INT_NULLS = {"unsignedByte": 255, "short": -32768, "int": -2147483648, "long": -9223372036854775808}


def votable(fields: list[dict], rows: list[tuple], *, version: str = "1.3", fmt: str = "tabledata",
            null_rows: tuple[int, ...] = (), description: str | None = None) -> bytes:
    """A one-table VOTable written by astropy; rows in ``null_rows`` are NULL in every column
    (variable-length arrays excepted: astropy 8 writes a broken BINARY2 stream for masked ones;
    give those an empty array, which reads back as NULL)."""
    vot = VOTableFile(version=version)
    resource = Resource()
    vot.resources.append(resource)
    table = TableElement(vot)
    resource.tables.append(table)
    if description:
        table.description = description
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's notes on the IDs it derives from odd names
        table.fields.extend(Field(vot, **f) for f in fields)
    for f in table.fields:
        if f.datatype in _INT_NULLS:  # BINARY needs explicit NULL values for integers (as STIL writes)
            f.values.null = _INT_NULLS[f.datatype]
    table.create_arrays(len(rows))
    for i, row in enumerate(rows):
        table.array[i] = row
        if i in null_rows:
            table.array.mask[i] = tuple(not isinstance(v, np.ma.MaskedArray) for v in row)
    table.format = fmt
    out = io.BytesIO()
    vot.to_xml(out)
    return out.getvalue()


def inline(name: str, doc: bytes, part: str | None = None) -> Params:
    part = part or name
    return Params.of([("UPLOAD", f"{name},param:{part}")], {part: doc})


@pytest.fixture()
def settings(tmp_path):
    from diavo.server.settings import Settings

    def make(**kw):
        return Settings(root=tmp_path, **kw)
    return make


@pytest.fixture(scope="module")
def con(small_archive):
    c = store.connect(small_archive[0])
    duckdb_functions.register_udfs(c)  # as the engine does: UDFs on the long-lived handle, macros per cursor
    duckdb_functions.register_healpix_index(c)
    yield c
    c.close()


def run(con, adql: str, uploads: dict):
    t = translate(adql, MODEL, uploads={k: u.table for k, u in uploads.items()})
    cur = con.cursor()
    try:
        duckdb_functions.register_macros(cur)
        for name, up in uploads.items():
            cur.register(DUCKDB.upload_relation(name), up.data)
        return t, cur.sql(t.sql, params=t.params or None).to_arrow_table()
    finally:
        cur.close()


def reread(result: pa.Table, columns: list[dict], encoding: str):
    out = io.BytesIO()
    write_votable(result.to_batches(), columns, out, encoding=encoding)
    return parse_votable(io.BytesIO(out.getvalue()), verify="ignore").get_first_table()


# ------------------------------------------------------------------ taplint's UPL table
UPL_FIELDS = [
    {"name": "d_short", "datatype": "short"},
    {"name": "d_int", "datatype": "int", "ucd": "meta.id"},
    {"name": "d_long", "datatype": "long", "utype": "x:y"},
    {"name": "d_float", "datatype": "float", "unit": "mag"},
    {"name": "d_double", "datatype": "double", "unit": "deg", "ucd": "pos.eq.ra"},
    {"name": "d_char", "datatype": "char", "arraysize": "1"},
    {"name": "d_string", "datatype": "char", "arraysize": "2"},
    {"name": "d_time", "datatype": "char", "arraysize": "19", "xtype": "timestamp"},
]
UPL_TIMES = [dt.datetime(2000, 1, 1) + i * dt.timedelta(days=1, seconds=864) for i in range(22)]
UPL_ROWS = [(i, i, i, i * 1.125, i * 1.125, chr(65 + i), str(i), t.isoformat()) for i, t in enumerate(UPL_TIMES)]
UPL_ROWS.append((0, 0, 0, 0.0, 0.0, "", "", ""))


@pytest.mark.parametrize("version,fmt", [("1.2", "tabledata"), ("1.2", "binary"), ("1.3", "binary2"),
                                         ("1.4", "tabledata")])
def test_upl_round_trip_is_lossless(con, settings, version, fmt):
    doc = votable(UPL_FIELDS, UPL_ROWS, version=version, fmt=fmt, null_rows=(22,))
    # taplint names the part differently from the table: t1,param:upload_t1
    up = load_uploads(inline("t1", doc, part="upload_t1"), settings())["t1"]
    assert up.table.schema == "TAP_UPLOAD" and up.table.name == "t1"
    assert up.data.schema.types == [pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64(),
                                    pa.string(), pa.string(), pa.timestamp("us")]
    expect = {
        "d_short": [r[0] for r in UPL_ROWS[:22]], "d_int": [r[1] for r in UPL_ROWS[:22]],
        "d_long": [r[2] for r in UPL_ROWS[:22]], "d_float": [r[3] for r in UPL_ROWS[:22]],
        "d_double": [r[4] for r in UPL_ROWS[:22]], "d_char": [r[5] for r in UPL_ROWS[:22]],
        "d_string": [r[6] for r in UPL_ROWS[:22]], "d_time": UPL_TIMES,
    }
    for name, values in expect.items():
        assert up.data[name].to_pylist() == values + [None], name
    meta = {c.name: c.votable_attrs() for c in up.table.columns}
    for f in UPL_FIELDS:
        got = meta[f["name"]]
        for key in ("datatype", "unit", "ucd", "utype", "xtype"):
            assert got.get(key) == f.get(key), (f["name"], key)
    assert meta["d_string"]["arraysize"] == "2" and meta["d_char"]["arraysize"] == "1"
    assert meta["d_time"]["arraysize"] == "*"  # written back with microseconds, so not 19 wide

    t, result = run(con, "SELECT * FROM TAP_UPLOAD.t1", {"t1": up})
    assert [c["name"] for c in t.columns] == [f["name"] for f in UPL_FIELDS]
    assert result.to_pylist() == up.data.to_pylist()
    for encoding in ("tabledata", "binary2"):
        back = reread(result, t.columns, encoding)
        assert [(f.name, f.datatype, f.xtype) for f in back.fields] == \
            [(f["name"], f["datatype"], f.get("xtype")) for f in UPL_FIELDS]
        times = back.array["d_time"]
        assert all("T" in str(v) for v in times[:22])
        assert [dt.datetime.fromisoformat(str(v)) for v in times[:22]] == UPL_TIMES
        assert back.array["d_int"].tolist()[:22] == list(range(22)) and back.array["d_int"].mask[22]
        assert back.array["d_double"].tolist()[:22] == expect["d_double"]


# ------------------------------------------------------------------ other VOTable shapes
WIDE_FIELDS = [
    {"name": "id", "datatype": "int"},
    {"name": "select", "datatype": "double"},
    {"name": "a b", "datatype": "char", "arraysize": "*"},
    {"name": "Ünï", "datatype": "unicodeChar", "arraysize": "*"},
    {"name": "flag", "datatype": "boolean"},
    {"name": "small", "datatype": "unsignedByte"},
    {"name": "code", "datatype": "char", "arraysize": "4"},
    {"name": "pt", "datatype": "double", "arraysize": "2", "xtype": "point", "unit": "deg"},
    {"name": "vec", "datatype": "int", "arraysize": "*"},
    {"name": "grid", "datatype": "float", "arraysize": "2x3"},
    {"name": "when", "datatype": "char", "arraysize": "*", "xtype": "adql:TIMESTAMP"},
]


def _ints(*values: int) -> np.ma.MaskedArray:
    return np.ma.array(np.array(values, dtype="i4"), mask=np.zeros(len(values), bool))


def _wide_rows():
    return [
        (1, 1.5, "x y", "é", True, 7, "abcd", (10.0, 20.0), _ints(1, 2, 3),
         np.arange(6, dtype="f4").reshape(3, 2), "2024-05-06T07:08:09.5Z"),
        (2, 2.5, "<&>", "Ω", False, 8, "ab", (10.5, 20.0), _ints(4), np.ones((3, 2), "f4"), "2024-05-06"),
        (0, 0.0, "", "", False, 0, "", (0.0, 0.0), _ints(), np.zeros((3, 2), "f4"), ""),
    ]


@pytest.mark.parametrize("fmt,version", [("tabledata", "1.3"), ("binary2", "1.3")])
def test_wide_table_types_names_and_queries(con, settings, fmt, version):
    doc = votable(WIDE_FIELDS, _wide_rows(), version=version, fmt=fmt, null_rows=(2,),
                  description="several kinds of column")
    up = load_uploads(inline("wide", doc), settings())["wide"]
    assert up.table.description == "several kinds of column"
    assert up.data.column_names == [f["name"] for f in WIDE_FIELDS]
    cols = {c.name: c for c in up.table.columns}
    assert (cols["flag"].datatype, cols["small"].datatype, cols["code"].datatype, cols["a b"].datatype,
            cols["Ünï"].datatype, cols["when"].datatype) == ("boolean", "byte", "char", "string", "unicode",
                                                              "timestamp")
    assert (cols["pt"].xtype, cols["pt"].arraysize, cols["pt"].unit) == ("point", "2", "deg")
    assert cols["grid"].arraysize == "6" and cols["vec"].arraysize == "*"
    d = up.data
    assert d["pt"].type == pa.list_(pa.float64()) and d["small"].type == pa.uint8()
    assert d["pt"].to_pylist() == [[10.0, 20.0], [10.5, 20.0], None]
    assert d["vec"].to_pylist() == [[1, 2, 3], [4], None]
    assert d["grid"].to_pylist()[0] == [0, 1, 2, 3, 4, 5]
    assert d["a b"].to_pylist() == ["x y", "<&>", None] and d["Ünï"].to_pylist() == ["é", "Ω", None]
    assert d["code"].to_pylist() == ["abcd", "ab", None]
    assert d["when"].to_pylist() == [dt.datetime(2024, 5, 6, 7, 8, 9, 500000), dt.datetime(2024, 5, 6), None]
    assert d["flag"].to_pylist() == [True, False, None] and d["small"].to_pylist() == [7, 8, None]

    uploads = {"wide": up}
    t, got = run(con, 'SELECT "select", "a b", "Ünï", code FROM TAP_UPLOAD.wide WHERE id = 2', uploads)
    assert got.to_pylist() == [{"select": 2.5, "a b": "<&>", "Ünï": "Ω", "code": "ab"}]
    _, got = run(con, "SELECT id FROM TAP_UPLOAD.wide WHERE 1 = CONTAINS(pt, CIRCLE('ICRS', 10, 20, 0.1))",
                 uploads)
    assert got.column("id").to_pylist() == [1]
    _, got = run(con, "SELECT id, DISTANCE(pt, POINT('ICRS', 10, 20)) AS d FROM TAP_UPLOAD.wide "
                      "WHERE id > 0 ORDER BY id", uploads)
    assert got.column("d").to_pylist()[0] == 0 and 0.46 < got.column("d").to_pylist()[1] < 0.48
    _, got = run(con, "SELECT COUNT(*) AS n FROM TAP_UPLOAD.wide WHERE \"when\" > '2024-05-06T01:00:00'",
                 uploads)
    assert got.column("n").to_pylist() == [1]
    # ADQL has no boolean literal: uploaded booleans compare with 1 and 0.
    _, got = run(con, "SELECT id FROM TAP_UPLOAD.wide WHERE flag = 1", uploads)
    assert got.column("id").to_pylist() == [1]
    _, got = run(con, "SELECT id FROM TAP_UPLOAD.wide WHERE flag = 0", uploads)
    assert got.column("id").to_pylist() == [2]
    # Numeric vectors can be selected and tested for NULL; arithmetic on them is an ADQL error.
    _, got = run(con, "SELECT COUNT(*) AS n FROM TAP_UPLOAD.wide WHERE vec IS NOT NULL", uploads)
    assert got.column("n").to_pylist() == [2]
    with pytest.raises(ADQLError, match="numeric"):
        run(con, "SELECT vec + 1 AS v FROM TAP_UPLOAD.wide", uploads)

    t, result = run(con, "SELECT * FROM TAP_UPLOAD.wide", uploads)
    assert result.to_pylist() == up.data.to_pylist()
    back = reread(result, t.columns, "binary2")
    assert [(f.name, f.datatype, f.arraysize, f.xtype) for f in back.fields][7] == ("pt", "double", "2", "point")
    assert back.array["pt"][0].tolist() == [10.0, 20.0] and back.array["a b"][1] == "<&>"


def test_inline_fits_in_votable(settings):
    cols = fits.ColDefs([fits.Column("id", "J", array=np.array([1, 2, 3])),
                         fits.Column("ra", "D", array=np.array([10.0, np.nan, 12.0])),
                         fits.Column("name", "8A", array=np.array(["alpha", "beta", ""]))])
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(buf)
    stream = base64.encodebytes(buf.getvalue()).decode()
    doc = f"""<?xml version="1.0"?>
<VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
<FIELD name="id" datatype="int"/><FIELD name="ra" datatype="double" unit="deg"/>
<FIELD name="name" datatype="char" arraysize="8"/>
<DATA><FITS extnum="1"><STREAM encoding="base64">{stream}</STREAM></FITS></DATA>
</TABLE></RESOURCE></VOTABLE>""".encode()
    up = load_uploads(inline("f", doc), settings())["f"]
    assert up.data.to_pydict() == {"id": [1, 2, 3], "ra": [10.0, None, 12.0], "name": ["alpha", "beta", None]}
    assert up.table.column("ra").unit == "deg" and up.data["id"].type == pa.int32()


def test_csv(settings):
    doc = b"id,ra,name,seen,ok\n1,10.5,alpha,2024-01-02T03:04:05,true\n2,,\"b,c\",,false\n"
    up = load_uploads(inline("c", doc), settings())["c"]
    assert up.data.to_pydict() == {"id": [1, 2], "ra": [10.5, None], "name": ["alpha", "b,c"],
                                   "seen": [dt.datetime(2024, 1, 2, 3, 4, 5), None], "ok": [True, False]}
    assert [c.datatype for c in up.table.columns] == ["long", "double", "string", "timestamp", "boolean"]
    assert up.data["seen"].type == pa.timestamp("us")


# ------------------------------------------------------------------ the parameter and limits
SMALL = votable([{"name": "x", "datatype": "int"}], [(1,), (2,)])


def test_uploads_accumulate(settings):
    params = Params.of([("UPLOAD", "a,param:pa;b,param:pb"), ("upload", "C_1,param:pc")],
                       {"pa": SMALL, "pb": SMALL, "pc": b"x\n5\n"})
    ups = load_uploads(params, settings())
    assert list(ups) == ["a", "b", "C_1"]
    assert ups["C_1"].data.to_pydict() == {"x": [5]} and ups["b"].table.name == "b"
    assert load_uploads(Params.of([("QUERY", "SELECT 1")]), settings()) == {}
    # the very same pair twice (query string and body) is one table
    twice = Params.of([("UPLOAD", "t1,param:pa"), ("UPLOAD", "t1,param:pa")], {"pa": SMALL})
    assert list(load_uploads(twice, settings())) == ["t1"]


def test_plain_form_field_is_accepted_for_param(settings):
    # curl -F 't1=<file' sends the table as a plain field, not a file part
    params = Params.of([("UPLOAD", "t1,param:t1"), ("t1", SMALL.decode())])
    assert load_uploads(params, settings())["t1"].data.num_rows == 2


@pytest.mark.parametrize("values,files,message", [
    (["t1,param:t1"], {}, "UPLOAD t1 refers to param:t1 but no multipart part named t1 was sent"),
    (["1t,param:x"], {"x": SMALL}, "name '1t' is not valid"),
    (["a.b,param:x"], {"x": SMALL}, "name 'a.b' is not valid"),
    (["t1"], {}, "not of the form name,URI"),
    (["t1,param:x", "T1,param:x"], {"x": SMALL}, "T1 is given twice"),
    (["t1,file:///etc/passwd"], {}, "unsupported upload scheme file:"),
    (["t1,ftp://example.org/x.vot"], {}, "unsupported upload scheme ftp:"),
    (["t1,vos://example.org~vospace/x"], {}, "unsupported upload scheme vos:"),
    (["t1,ivo://example.org/x"], {}, "unsupported upload scheme"),
])
def test_parameter_errors(settings, values, files, message):
    with pytest.raises(UsageFault) as err:
        load_uploads(Params.of([("UPLOAD", v) for v in values], files), settings())
    assert message in err.value.message and err.value.status == 400


def test_limits(settings):
    many = Params.of([("UPLOAD", ";".join(f"t{i},param:p" for i in range(3)))], {"p": SMALL})
    with pytest.raises(UsageFault, match="at most 2"):
        load_uploads(many, settings(upload_max_tables=2))
    with pytest.raises(TooLarge, match="3 rows, more than the limit of 2"):
        load_uploads(inline("t", b"x\n1\n2\n3\n"), settings(upload_max_rows=2))
    two = Params.of([("UPLOAD", "a,param:p"), ("UPLOAD", "b,param:p")], {"p": SMALL})
    assert len(load_uploads(two, settings(upload_max_bytes=2 * len(SMALL)))) == 2
    with pytest.raises(TooLarge) as err:  # the byte limit counts all tables of the request
        load_uploads(two, settings(upload_max_bytes=2 * len(SMALL) - 1))
    assert err.value.status == 413 and "UPLOAD b" in err.value.message


@pytest.mark.parametrize("fields,message", [
    ([{"name": "b", "datatype": "bit"}], "datatype 'bit' is not supported"),
    ([{"name": "z", "datatype": "doubleComplex"}], "datatype 'doubleComplex' is not supported"),
    ([{"name": "bb", "datatype": "boolean", "arraysize": "2"}], "arrays of booleans"),
    ([{"name": "Ra", "datatype": "double"}, {"name": "rA", "datatype": "double"}], "'Ra' and 'rA'"),
])
def test_unsupported_columns(settings, fields, message):
    doc = b"""<?xml version="1.0"?><VOTABLE version="1.3"><RESOURCE><TABLE>%s<DATA><TABLEDATA/></DATA>
</TABLE></RESOURCE></VOTABLE>""" % b"".join(
        b'<FIELD name="%s" datatype="%s"%s/>' % (f["name"].encode(), f["datatype"].encode(),
                                                  b' arraysize="%s"' % f["arraysize"].encode()
                                                  if "arraysize" in f else b"") for f in fields)
    with pytest.raises(UsageFault, match=message):
        load_uploads(inline("t", doc), settings())


def test_unsafe_or_unreadable_documents(settings, tmp_path):
    secret = tmp_path / "data.bin"
    secret.write_bytes(b"\x00\x00\x00\x07")
    href = f"""<?xml version="1.0"?><VOTABLE version="1.3"><RESOURCE><TABLE><FIELD name="x" datatype="int"/>
<DATA><BINARY><STREAM href="file://{secret}"/></BINARY></DATA></TABLE></RESOURCE></VOTABLE>""".encode()
    entity = b"""<?xml version="1.0"?><!DOCTYPE VOTABLE [<!ENTITY e "<FIELD name='y' datatype='int'/>">]>
<VOTABLE version="1.3"><RESOURCE><TABLE><FIELD name="x" datatype="int"/>&e;<DATA><TABLEDATA/></DATA>
</TABLE></RESOURCE></VOTABLE>"""
    cases = [
        (href, "external data"),
        (entity, "entity declarations"),
        (b"<VOTABLE><RESOURCE></RESOURCE></VOTABLE>", "no TABLE"),
        (b"<VOTABLE><RESOURCE><TABLE>", "not well-formed"),
        (b"", "empty"),
        (b"\x1f\x8b\x08\x00", "compressed"),
        (SMALL.replace(b"<TD>2</TD>", b"<TD>two</TD>"), "not a readable VOTable"),
        (SMALL.replace(b"<TABLE>", b'<TABLE nrows="3">'), "declares 3 rows but 2 could be read"),
        (b"SIMPLE  =                    T", "FITS files are not accepted"),
        (b"<VOTABLE><RESOURCE><TABLE><DATA><TABLEDATA/></DATA></TABLE></RESOURCE></VOTABLE>", "no columns"),
        (votable([{"name": "t", "datatype": "char", "arraysize": "*", "xtype": "timestamp"}],
                 [("2024-13-45",)]), "'2024-13-45' is not an ISO-8601 timestamp"),
    ]
    for doc, message in cases:
        with pytest.raises(UsageFault, match=message):
            load_uploads(inline("t", doc), settings())


# ------------------------------------------------------------------ cross-match with the archive
@pytest.mark.parametrize("condition", [
    "1=CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ra, u.dec, 1/3600.))",
    "DISTANCE(POINT('ICRS', s.ra, s.dec), POINT('ICRS', u.ra, u.dec)) < 1/3600.",
])
def test_cross_match_with_dia_sources(con, settings, condition):
    picks = con.sql('SELECT "diaSourceId", ra, dec FROM dp1."DiaSource" WHERE "diaSourceId" % 37 = 0 '
                    'ORDER BY "diaSourceId" LIMIT 6').fetchall()
    assert len(picks) == 6
    doc = votable([{"name": "ra", "datatype": "double", "unit": "deg"},
                   {"name": "dec", "datatype": "double", "unit": "deg"},
                   {"name": "src", "datatype": "long"}],
                  [(ra, dec, sid) for sid, ra, dec in picks], fmt="binary2")
    up = load_uploads(inline("t1", doc), settings())["t1"]
    t, got = run(con, f"SELECT u.*, s.diaSourceId FROM TAP_UPLOAD.t1 AS u JOIN dp1.DiaSource AS s ON {condition}",
                 {"t1": up})
    assert [c["name"] for c in t.columns] == ["ra", "dec", "src", "diaSourceId"]
    assert t.columns[0]["unit"] == "deg"
    pairs = set(zip(got.column("src").to_pylist(), got.column("diaSourceId").to_pylist(), strict=False))
    assert all((sid, sid) in pairs for sid, _, _ in picks)


# ------------------------------------------------------------------ URLs over real HTTP
class _Handler(http.server.BaseHTTPRequestHandler):
    doc = SMALL

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        port = self.server.server_address[1]
        redirects = {"/same": f"http://127.0.0.1:{port}/t.vot", "/other": f"http://127.0.0.2:{port}/t.vot",
                     "/file": "file:///etc/passwd", "/relative": "t.vot"}
        if self.path in redirects:
            self.send_response(302)
            self.send_header("Location", redirects[self.path])
            self.end_headers()
        elif self.path == "/t.vot":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.doc)))
            self.end_headers()
            self.wfile.write(self.doc)
        elif self.path == "/endless":  # no Content-Length: the reader must stop by itself
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"x" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def http_base():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def only_127_0_0_1(ip) -> bool:
    return str(ip) == "127.0.0.1"


def test_url_refused_unless_private_addresses_are_allowed(settings, http_base):
    for url in (f"{http_base}/t.vot", http_base.replace("127.0.0.1", "localhost") + "/t.vot"):
        with pytest.raises(UsageFault, match="allow_private_upload_urls") as err:
            load_uploads(Params.of([("UPLOAD", f"t1,{url}")]), settings())
        assert "UPLOAD t1" in err.value.message
    ups = load_uploads(Params.of([("UPLOAD", f"t1,{http_base}/t.vot"), ("UPLOAD", f"t2,{http_base}/relative")]),
                       settings(allow_private_upload_urls=True))
    assert ups["t1"].data.to_pydict() == {"x": [1, 2]} and ups["t2"].data.num_rows == 2


def test_url_size_limit_and_errors(settings, http_base):
    lenient = settings(allow_private_upload_urls=True, upload_max_bytes=100_000)
    with pytest.raises(TooLarge):
        load_uploads(Params.of([("UPLOAD", f"t1,{http_base}/endless")]), lenient)
    with pytest.raises(TooLarge):  # refused from Content-Length before reading
        load_uploads(Params.of([("UPLOAD", f"t1,{http_base}/t.vot")]),
                     settings(allow_private_upload_urls=True, upload_max_bytes=len(SMALL) - 1))
    with pytest.raises(UsageFault, match="HTTP 404"):
        load_uploads(Params.of([("UPLOAD", f"t1,{http_base}/missing")]), lenient)
    with pytest.raises(UsageFault, match="cannot resolve"):
        load_uploads(Params.of([("UPLOAD", "t1,http://no-such-host.invalid/x")]), lenient)


def test_redirects_are_checked_at_every_hop(http_base):
    assert fetch_url("t1", f"{http_base}/same", 10_000, allow_address=only_127_0_0_1) == SMALL
    with pytest.raises(UsageFault, match="127.0.0.2"):
        fetch_url("t1", f"{http_base}/other", 10_000, allow_address=only_127_0_0_1)
    with pytest.raises(UsageFault, match="unsupported upload scheme file:"):
        fetch_url("t1", f"{http_base}/file", 10_000, allow_address=None)
