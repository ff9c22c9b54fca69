"""The search: the driver that owns a running search (`driver`), the Optuna controller
(`controller`, `samplers`), Ray dispatch and the epoch broker (`dispatch`), the search
configuration (`config`) and what a person watches while it runs (`monitor`).

Docstring only: `nas status` reads a search without importing Optuna or Ray, so each module
is imported where it is used (`from nas.search.driver import run_search`).
"""
