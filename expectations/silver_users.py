"""Contract of ``silver_users`` (the checks every silver table gets, see :mod:`expectations._silver`)."""
from expectations._silver import common

EXPECTATIONS = common("users")
