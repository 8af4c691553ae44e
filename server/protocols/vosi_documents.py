"""The VOSI documents (availability, capabilities, tables) built with vo-models.

Table metadata is rendered from the rows that fill TAP_SCHEMA (``tap_schema_rows``), so /tables and
TAP_SCHEMA cannot disagree (taplint TMC). The capabilities list only what the translator really
does: the ADQL features come from the same function catalogue the checker and translator use.
Kept apart from the handlers in ``vosi`` because vo-models' pydantic-xml classes cost a quarter of a
second to import: a server pays that on its first VOSI request, not at start.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import field_validator
from pydantic_xml import BaseXmlModel, attr, element
from vo_models.tapregext.models import (
    DataLimit,
    DataLimits,
    DataModelType,
    Language,
    LanguageFeature,
    LanguageFeatureList,
    OutputFormat,
    TableAccess,
    TimeLimits,
    UploadMethod,
    Version,
)
from vo_models.vodataservice.models import (
    DataType,
    FKColumn,
    ForeignKey,
    ParamHTTP,
    TableParam,
    TableSchema,
)
from vo_models.vodataservice.models import (
    Table as VSTable,
)
from vo_models.voresource.models import AccessURL, Capability, SecurityMethod, WebBrowser
from vo_models.vosi.availability import Availability
from vo_models.vosi.capabilities.models import VOSICapabilities
from vo_models.vosi.tables.models import NSMAP as TABLES_NSMAP
from vo_models.vosi.tables.models import VOSITableSet

from diavo.server.adql.functions import CATALOGUE, UDFS, feature_forms
from diavo.server.archive.model import DataModel, adql_name, tap_schema_rows
from diavo.server.output.formats import FORMATS
from diavo.server.output.formats import OutputFormat as OutputFormatSpec
from diavo.server.settings import Settings

XML_TYPE = "text/xml"

VOSI_AVAILABILITY = "ivo://ivoa.net/std/VOSI#availability"
VOSI_CAPABILITIES = "ivo://ivoa.net/std/VOSI#capabilities"
VOSI_TABLES = "ivo://ivoa.net/std/VOSI#tables-1.1"
DALI_EXAMPLES = "ivo://ivoa.net/std/DALI#examples"
TOKEN_SECURITY = "ivo://ivoa.net/sso#token"
OBSCORE = "ivo://ivoa.net/std/ObsCore#core-1.1"
TAPREGEXT = "ivo://ivoa.net/std/TAPRegExt"
UDF_FEATURE = TAPREGEXT + "#features-udf"
GEO_FEATURE = TAPREGEXT + "#features-adqlgeo"

#: The only geometry function names TAPRegExt/ADQL allow under features-adqlgeo (taplint checks).
GEOMETRY_FORMS = frozenset(
    "AREA BOX CENTROID CIRCLE CONTAINS COORD1 COORD2 COORDSYS DISTANCE INTERSECTS POINT POLYGON "
    "REGION".split()
)
#: Feature keys the translator supports but the capabilities leave out. STILTS 3.4's taplint knows
#: every ADQL 2.1 key except features-adql-conditional (COALESCE): it reports the key as an error
#: (E KEYX) and the ADQL text's lower-case spelling as a custom feature (W CULF). COALESCE still
#: works; it is declared again once the validators know the key.
UNDECLARED = frozenset({TAPREGEXT + "#features-adql-conditional"})
#: Descriptions of the operator-like forms that are not in the function catalogue.
FORM_NOTES = {
    "ILIKE": "case-insensitive LIKE",
    "CAST": "conversion to another ADQL type",
    "UNION": "rows of both queries (ALL keeps duplicates)",
    "EXCEPT": "rows of the first query not in the second",
    "INTERSECT": "rows in both queries",
    "OFFSET": "skip the first rows of the ordered result",
    "WITH": "named subqueries (common table expressions)",
}
OUTPUT_KEYS = {TAPREGEXT + "#output-votable-" + s for s in ("td", "binary", "binary2")}
UPLOAD_METHODS = ("inline", "http", "https")


# --- vo-models, adjusted --------------------------------------------------------------------------
# vo-models 0.5 escapes text before lxml escapes it again ("&amp;amp;"), quotes column names with its
# own reserved-word list, turns URLs into pydantic AnyUrl (which rewrites hosts), and lacks the
# VODataService attributes std and extendedType. These subclasses keep values exactly as given.

class URL(AccessURL):
    value: str  # type: ignore[assignment]
    use: str = attr(name="use")  # type: ignore[assignment]


class _VOTableType(DataType, tag="dataType"):
    extended_type: str | None = attr(name="extendedType", default=None)


class _Column(TableParam, tag="column"):
    std: bool | None = attr(name="std", default=None)
    datatype: _VOTableType | None = element(tag="dataType", default=None)

    def __init__(self, **data: Any) -> None:
        BaseXmlModel.__init__(self, **data)  # skip vo-models' guessing of flags and data type

    @field_validator("column_name")
    def validate_colname(cls, value: str) -> str:
        return value

    @field_validator("description")
    def validate_description(cls, value: str) -> str:
        return value


class _Table(VSTable, tag="table", ns="", nsmap={"": ""}, skip_empty=True):
    column: list[_Column] | None = element(tag="column", default_factory=list, ns="")  # type: ignore[assignment]

    def __init__(self, **data: Any) -> None:
        BaseXmlModel.__init__(self, **data)  # skip vo-models' escaping


class _Schema(TableSchema, tag="schema", ns="", nsmap={"": ""}, skip_empty=True):
    table: list[_Table] | None = element(tag="table", default_factory=list)  # type: ignore[assignment]

    def __init__(self, **data: Any) -> None:
        BaseXmlModel.__init__(self, **data)


class _TableSet(VOSITableSet, tag="tableset", ns="vosi", nsmap=TABLES_NSMAP):
    tableset_schema: list[_Schema] = element(tag="schema")  # type: ignore[assignment]


class _OneTable(_Table, tag="table", ns="vosi", nsmap=TABLES_NSMAP):
    pass


def to_xml(doc: BaseXmlModel) -> bytes:
    out = doc.to_xml(skip_empty=True, xml_declaration=True, encoding="UTF-8")
    return out if isinstance(out, bytes) else out.encode()



# --- availability ---------------------------------------------------------------------------------

def availability_document(settings: Settings, started: dt.datetime | None) -> bytes:
    """Available when the archive's catalogue is there to be read; a missing one is reported."""
    catalog = Path(settings.root) / "catalog.duckdb"
    up = catalog.exists()
    note = "diavo is accepting queries" if up else f"the archive catalogue {catalog.name} is missing"
    return to_xml(Availability(available=up, up_since=started if up else None, note=[note]))


# --- capabilities ---------------------------------------------------------------------------------

def _features() -> list[LanguageFeatureList]:
    """TAPRegExt languageFeatures from the translator's own catalogue, with descriptions."""
    udf_notes = {f.signature: f.description for f in UDFS.values()}
    out = []
    for key, forms in sorted(feature_forms().items()):
        if key in UNDECLARED:
            continue
        if key == GEO_FEATURE:
            forms = [f for f in forms if f in GEOMETRY_FORMS]
        features = []
        for form in forms:
            note = udf_notes.get(form) if key == UDF_FEATURE else None
            if note is None:
                fn = CATALOGUE.get(form)
                note = fn.description if fn else FORM_NOTES.get(form)
            features.append(LanguageFeature(form=form, description=note))
        if features:
            out.append(LanguageFeatureList(type=key, feature=features))
    return out


def _output_formats(formats: Iterable[OutputFormatSpec]) -> list[OutputFormat]:
    """One entry per format, aliased by the short RESPONSEFORMAT values that select it; an ivo-id
    under the TAPRegExt prefix is given only if TAPRegExt defines it (else taplint E XOFK)."""
    out = []
    for f in formats:
        known = f.ivo_id in OUTPUT_KEYS or not (f.ivo_id or TAPREGEXT).startswith(TAPREGEXT)
        aliases = list(dict.fromkeys((f.key, *f.short_aliases)))
        out.append(OutputFormat(mime=f.mime, alias=aliases, ivo_id=f.ivo_id if known else None))
    return out


def vosi_capability(standard_id: str, url: str) -> Capability:
    return Capability(standard_id=standard_id,  # type: ignore[arg-type]  # pydantic makes the AnyUrl
                      interface=[ParamHTTP(role="std", access_url=[URL(value=url, use="full")])])


def service_capabilities(main: Capability, root: str) -> bytes:
    """A protocol's capabilities document: its own capability, then the VOSI capabilities and
    availability beside it at ``root`` (SIA, SODA: every resource except TAP's)."""
    return to_xml(VOSICapabilities(capability=[
        main,
        vosi_capability(VOSI_CAPABILITIES, root + "/capabilities"),
        vosi_capability(VOSI_AVAILABILITY, root + "/availability"),
    ]))


def capabilities_document(settings: Settings, base: str,
                          formats: Iterable[OutputFormatSpec] = FORMATS) -> bytes:
    """The VOSI capabilities of the TAP service whose URLs start with ``base``."""
    tap = base + "/tap"
    security = [SecurityMethod(standard_id=TOKEN_SECURITY)] if settings.auth_required else []  # type: ignore[arg-type]  # pydantic makes the AnyUrl
    table_access = TableAccess(
        interface=[ParamHTTP(role="std", version="1.1", access_url=[URL(value=tap, use="base")],
                             security_method=security)],
        data_model=[DataModelType(value="ObsCore-1.1", ivo_id=OBSCORE)],
        language=[Language(
            name="ADQL",
            version=[Version(value="2.0", ivo_id="ivo://ivoa.net/std/ADQL#v2.0"),
                     Version(value="2.1", ivo_id="ivo://ivoa.net/std/ADQL#v2.1")],
            description="ADQL 2.1, checked against the data model and translated for the serving engine; "
                        "LANG=ADQL-2.0 is accepted as well.",
            language_features=_features(),
        )],
        output_format=_output_formats(formats),
        upload_method=[UploadMethod(ivo_id=f"{TAPREGEXT}#upload-{m}") for m in UPLOAD_METHODS],
        retention_period=TimeLimits(default=settings.retention_default_s, hard=settings.retention_hard_s),
        execution_duration=TimeLimits(default=settings.exec_default_s, hard=settings.exec_hard_s),
        output_limit=DataLimits(default=DataLimit(value=settings.maxrec_default, unit="row"),
                                hard=DataLimit(value=settings.maxrec_hard, unit="row")),
        upload_limit=DataLimits(hard=DataLimit(value=settings.upload_max_bytes, unit="byte")),
    )
    examples = Capability(standard_id=DALI_EXAMPLES,  # type: ignore[arg-type]  # pydantic makes the AnyUrl
                          interface=[WebBrowser(access_url=[URL(value=tap + "/examples", use="full")])])
    return to_xml(VOSICapabilities(capability=[
        table_access,
        vosi_capability(VOSI_CAPABILITIES, tap + "/capabilities"),
        vosi_capability(VOSI_AVAILABILITY, tap + "/availability"),
        vosi_capability(VOSI_TABLES, tap + "/tables"),
        examples,
    ]))


# --- tables ---------------------------------------------------------------------------------------

def _tables(model: DataModel, detail: bool) -> list[tuple[str, _Table]]:
    """(schema name, table element) for every table, named exactly as in TAP_SCHEMA."""
    rows = tap_schema_rows(model)
    by_name = {f"{adql_name(t.schema)}.{adql_name(t.name)}": t for t in model.tables()}
    columns: dict[str, list[dict]] = {}
    for row in rows["columns"]:
        columns.setdefault(row["table_name"], []).append(row)
    pairs: dict[str, list[dict]] = {}
    for row in rows["key_columns"]:
        pairs.setdefault(row["key_id"], []).append(row)
    keys: dict[str, list[dict]] = {}
    for row in rows["keys"]:
        keys.setdefault(row["from_table"], []).append(row)

    out = []
    for row in rows["tables"]:
        name = row["table_name"]
        table = by_name[name]
        cols, fks = [], []
        if detail:
            cols = [_column(c, table) for c in sorted(columns.get(name, []), key=lambda c: c["column_index"])]
            fks = [
                ForeignKey(target_table=k["target_table"], description=k["description"], utype=k["utype"],
                           fk_column=[FKColumn(from_column=p["from_column"], target_column=p["target_column"])
                                      for p in pairs.get(k["key_id"], [])])
                for k in keys.get(name, [])
            ]
        out.append((row["schema_name"], _Table(
            table_name=name, table_type=row["table_type"], description=row["description"],
            utype=row["utype"], column=cols, foreign_key=fks,
        )))
    return out


def _column(row: dict, table: Any) -> _Column:
    """A TAP_SCHEMA.columns row as VODataService; nullability and the primary key come from the
    model, since TAP_SCHEMA has no place for them."""
    model_col = next(c for c in table.columns if adql_name(c.name) == row["column_name"])
    flags = [flag for flag, on in (("indexed", row["indexed"]),
                                   ("primary", model_col.name in table.primary_key),
                                   ("nullable", model_col.nullable)) if on]
    return _Column(
        column_name=row["column_name"], description=row["description"], unit=row["unit"],
        ucd=row["ucd"], utype=row["utype"], std=bool(row["std"]), flag=flags,
        datatype=_VOTableType(value=row["datatype"], arraysize=row["arraysize"], extended_type=row["xtype"]),
    )


def tableset_document(model: DataModel, detail: bool = True) -> bytes:
    rows = tap_schema_rows(model)["schemas"]
    tables = _tables(model, detail)
    schemas = [
        _Schema(schema_name=s["schema_name"], description=s["description"], utype=s["utype"],
                table=[t for schema, t in tables if schema == s["schema_name"]])
        for s in rows
    ]
    return to_xml(_TableSet(tableset_schema=schemas))


def table_document(model: DataModel, name: str) -> bytes | None:
    """One table in full detail; the name as in TAP_SCHEMA (or unquoted), any case. None if unknown."""
    wanted = name.lower()
    for _, table in _tables(model, detail=True):
        if wanted in (table.table_name.lower(), table.table_name.replace('"', "").lower()):
            return to_xml(_OneTable(**{k: getattr(table, k) for k in _Table.model_fields}))
    return None
