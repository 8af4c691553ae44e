"""Result serialisation: streaming VOTable (TABLEDATA and BINARY2) writers."""
from diavo.server.output.votable import error_votable, write_votable

__all__ = ["error_votable", "write_votable"]
