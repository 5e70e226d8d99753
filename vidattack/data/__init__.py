"""Data sets vidattack can make by itself, for the bundled models and for tests."""
