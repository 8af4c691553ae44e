"""The web front end: one page at ``/`` to query, browse, plot and look at images.

The page is static (HTML, CSS and our own JavaScript in ``static/``) and talks to the service
only through its public protocols (TAP sync and async, VOSI, SIA, DataLink, SODA, the image
previews), plus one JSON endpoint of its own, ``/ui/check``, that runs the service's ADQL parser
and checker as the user types. Plots use the plotly.js that the ``plotly`` package ships,
served from the installed package: nothing is fetched from outside.
"""
