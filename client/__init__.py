"""diavo client: Butler-style access to a diavo (or Rubin) TAP/SIA service, built on pyvo."""
