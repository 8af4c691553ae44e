"""What astroquery's TapPlus (the ESA archives' client, as Gaia users run it) needs of /tap/tables.

TapPlus reads the VOSI tableset with a SAX parser that requires an ``esatapplus:flags`` attribute
on every column, and asks for one table with ``tables?tables=NAME`` (then takes the first table it
gets) and for names only with ``only_tables=true``. VODataService does not allow a foreign
attribute there that no schema declares (taplint's schema check rejects it), so the attribute is
added only for TapPlus: its GET requests come from bare ``http.client`` and carry no User-Agent at
all (its POSTs say ``astroquery/...``), while browsers, curl, requests/pyvo, urllib, Java and
STILTS/TOPCAT all send one. The ``tables`` and ``only_tables`` parameters are honoured for
everyone, as they only narrow the standard document.
"""
from __future__ import annotations

from lxml import etree
from starlette.requests import Request

#: The namespace ESA's TAP+ services declare for their extensions.
ESATAPPLUS_NS = "http://esa.int/xml/EsaTapPlus"


def is_tapplus(request: Request) -> bool:
    agent = request.headers.get("user-agent")
    return agent is None or agent.lower().startswith("astroquery/")


def wanted_tables(request: Request) -> list[str]:
    """Table names from ``tables=a,b`` (TAP+), lower-cased; empty when the parameter is absent."""
    names: list[str] = []
    for key, value in request.query_params.multi_items():
        if key.lower() == "tables":
            names += [n.strip().lower() for n in value.split(",") if n.strip()]
    return names


def names_only(request: Request) -> bool:
    return any(k.lower() == "only_tables" and v.strip().lower() == "true"
               for k, v in request.query_params.multi_items())


def narrow(document: bytes, tables: list[str], flags: bool) -> bytes:
    """The tableset with only ``tables`` (all if empty) and, with ``flags``, TAP+ column flags."""
    root = etree.fromstring(document)
    if tables:
        for schema in root.findall("schema"):
            for table in schema.findall("table"):
                if (table.findtext("name") or "").strip().lower() not in tables:
                    schema.remove(table)
            if not schema.findall("table"):
                root.remove(schema)
    if flags:
        nsmap = dict(root.nsmap)
        nsmap["esatapplus"] = ESATAPPLUS_NS
        flagged = etree.Element(root.tag, nsmap=nsmap, attrib=dict(root.attrib))
        flagged.extend(list(root))
        root = flagged
        for column in root.iter("column"):
            column.set(f"{{{ESATAPPLUS_NS}}}flags", "")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
