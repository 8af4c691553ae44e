"""The archive: data model, storage, demo generator, ingest, export and image access."""
