"""Fixtures shared by the whole test suite live here; plain helpers live in tests/support.py."""
