"""Conformance runs of external validators (STILTS, pyvo) against a real diavo server.

A package so its test modules never clash by name with those under tests/.
"""
