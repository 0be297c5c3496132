"""opsflow: codified runbooks for IT service operation.

Every trigger (CLI, CI, event, schedule) builds a :class:`RunRequest`; one
executor runs it; every outcome is recorded in the store.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
