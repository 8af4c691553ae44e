"""Service descriptors (DataLink 1.1 §4): RESOURCE type="meta" utype="adhoc:service" blocks that
tell a client how to call a service for a row of a result.

A descriptor's input PARAM with ``ref`` takes its value from the FIELD whose ``ID`` it names, so
pyvo's ``iter_datalinks()``/``processed()`` and TOPCAT's "Invoke Service" fill the identifier from
each row. SIA and TAP results that carry ObsCore's ``obs_publisher_did`` get one for the DataLink
{links} service and one for SODA cut-outs.
"""
from __future__ import annotations

from diavo.server.output import xml

LINKS_ID = "ivo://ivoa.net/std/DataLink#links-1.1"
SODA_SYNC_ID = "ivo://ivoa.net/std/SODA#sync-1.0"
DATALINK_TYPE = "application/x-votable+xml;content=datalink"
FITS_TYPE = "application/fits"
#: The XML ID given to a result's obs_publisher_did FIELD.
PUBLISHER_DID_REF = "obs_publisher_did"


def param(name: str, value: str, *, datatype: str = "char", arraysize: str | None = "*",
          unit: str | None = None, ucd: str | None = None, xtype: str | None = None,
          ref: str | None = None, description: str | None = None, values: str = "") -> str:
    """One PARAM; ``values`` is a ready VALUES element."""
    attrs = f'name="{xml.attr(name)}" datatype="{datatype}"'
    if arraysize:
        attrs += f' arraysize="{arraysize}"'
    for key, val in (("unit", unit), ("ucd", ucd), ("xtype", xtype), ("ref", ref)):
        if val:
            attrs += f' {key}="{xml.attr(val)}"'
    attrs += f' value="{xml.attr(value)}"'
    inner = (f"<DESCRIPTION>{xml.text(description)}</DESCRIPTION>" if description else "") + values
    return f"<PARAM {attrs}>{inner}</PARAM>\n" if inner else f"<PARAM {attrs}/>\n"


def service(*, standard_id: str, access_url: str, inputs: list[str], name: str, description: str,
            content_type: str | None = None, ident: str | None = None, extra: str = "") -> str:
    """A whole descriptor RESOURCE; ``inputs`` are the PARAMs of its inputParams GROUP."""
    id_attr = f' ID="{xml.attr(ident)}"' if ident else ""
    return (f'<RESOURCE type="meta" utype="adhoc:service"{id_attr} name="{xml.attr(name)}">\n'
            f"<DESCRIPTION>{xml.text(description)}</DESCRIPTION>\n"
            + param("standardID", standard_id)
            + param("accessURL", access_url, ucd="meta.ref.url")
            + (param("contentType", content_type) if content_type else "")
            + extra
            + '<GROUP name="inputParams">\n' + "".join(inputs) + "</GROUP>\n</RESOURCE>\n")


def soda_inputs(id_ref: str | None) -> list[str]:
    """The SODA sync parameters diavo answers, without per-image ranges."""
    return [
        param("ID", "", ucd="meta.ref.url;meta.curation", ref=id_ref,
              description="The publisher DID of the dataset of interest"),
        param("CIRCLE", "", datatype="double", arraysize="3", unit="deg", ucd="pos.outline;obs",
              xtype="circle", description="A circle (ra dec radius, ICRS degrees) the cut-out covers"),
        param("POLYGON", "", datatype="double", arraysize="*", unit="deg", ucd="pos.outline;obs",
              xtype="polygon", description="A polygon (ra dec pairs, ICRS degrees) the cut-out covers"),
        param("POS", "", ucd="pos.outline;obs",
              description="CIRCLE ra dec r, RANGE ra1 ra2 dec1 dec2 or POLYGON ra dec ... (ICRS degrees)"),
        param("PIXEL", "", datatype="int", arraysize="4", unit="pix",
              description="diavo extension: xmin xmax ymin ymax, zero-based inclusive pixel indices of "
                          "the parent CCD (the frame of DiaSource x, y)"),
        param("BAND", "", datatype="double", arraysize="2", unit="m", ucd="em.wl;stat.interval",
              xtype="interval", description="Wavelength interval; the image is cut only spatially, "
              "so this selects all of it or nothing"),
        param("TIME", "", datatype="double", arraysize="2", unit="d", ucd="time.interval;obs.exposure",
              xtype="interval", description="Time interval (MJD, UTC); selects all of the image or nothing"),
    ]


def for_publisher_dids(links_url: str, soda_url: str, id_ref: str = PUBLISHER_DID_REF) -> list[str]:
    """The DataLink and SODA descriptors of a result whose ``id_ref`` FIELD holds publisher DIDs."""
    links = service(
        standard_id=LINKS_ID, access_url=links_url, content_type=DATALINK_TYPE, name="datalink",
        ident="datalink-links",
        description="DataLink {links} of each row's dataset: the FITS file, SODA cut-outs, PNG "
                    "previews, FITS headers and the DiaSources detected on it",
        inputs=[param("ID", "", ucd="meta.id;meta.main", ref=id_ref,
                      description="Publisher DID of a difference image")])
    soda = service(
        standard_id=SODA_SYNC_ID, access_url=soda_url, content_type=FITS_TYPE, name="soda-cutout",
        ident="soda-sync",
        description="Cut-outs of each row's difference image: a FITS file with IMAGE, MASK and "
                    "VARIANCE cut to the region's bounding box on the CCD. One region parameter per request.",
        inputs=soda_inputs(id_ref))
    return [links, soda]


def with_publisher_did_id(columns: list[dict]) -> tuple[list[dict], bool]:
    """The columns with ``ID`` set on an ObsCore obs_publisher_did column, and whether one was found.

    Only a column that is ObsCore's (its name and UCD) gets the ID: an expression aliased to that
    name is not known to hold identifiers the DataLink service understands."""
    out, found = [], False
    for col in columns:
        ucd = (col.get("ucd") or "").lower()
        if (not found and str(col.get("name", "")).lower() == PUBLISHER_DID_REF
                and ("meta.ref.ivoid" in ucd or "meta.ref.uri" in ucd)):
            col = dict(col, ID=PUBLISHER_DID_REF)
            found = True
        out.append(col)
    return out, found
