"""The HTTP face of diavo: one module per protocol or resource family, each with ``routes()``.

The app factory mounts every module's routes; handlers find the settings, data model and
services on ``request.app.state.ctx`` and never hold state of their own.
"""
