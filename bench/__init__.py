"""opsflow's benchmark suite (issue 7): opsflow against the tools a user would otherwise use.

Entry point: ``python -m bench`` (see bench/__main__.py and bench/README.md).
"""
