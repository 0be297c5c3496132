"""Events in, remediation runs out: ``opsflow daemon``.

intake (Alertmanager, JSON/CloudEvents, syslog → Event) → rules (pure: Event → Match)
→ safety (dedup, cooldown, host lock, budget, breaker) → RunRequest → build_plan → Executor.

Modules: ``models`` (Event, the ``triggers:`` schema), ``intake`` (payload parsers, pure),
``rules`` (matching, pure), ``safety`` (the guard, pure), ``daemon`` (queue, workers, recording),
``server`` (HTTP and syslog listeners, authentication), ``metrics`` (Prometheus exposition).
"""
