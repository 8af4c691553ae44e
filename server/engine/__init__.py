"""Engines run translated queries. Each sits behind the narrow interface of ``base``."""
