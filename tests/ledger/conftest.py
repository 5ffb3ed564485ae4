"""A fresh copy of one initialised world per test (initialising once per session keeps this fast)."""

from world_template import clock, home, template_home, world  # noqa: F401  (this folder's fixtures)
