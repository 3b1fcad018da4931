"""Helpers shared by the tests: plain functions and constants, imported from here.

Fixtures live in conftest.py files; a test module never imports another test module.
"""
