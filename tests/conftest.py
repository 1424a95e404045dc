"""Settings for the whole suite.

Hypothesis runs derandomized: the same examples on every run, so CI is deterministic and
a failure found once is found again. To explore new examples locally, run with
`--hypothesis-profile=explore`.
"""

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("deterministic")

# The throwaway PostgreSQL cluster and the store backends (pg_cluster, pg_url, store_backend).
pytest_plugins = ("tests.pg",)
