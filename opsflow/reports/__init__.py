"""KPI reports: performance presented against metrics, from the store.

Pure pieces (``hours``, ``stats``, ``objectives``) are kept apart from the queries (``rollup``,
``kpi``) and from the renderers (``text``, ``html``, ``metrics``). Every renderer takes the one
report dict that :func:`opsflow.reports.kpi.build_report` returns (``opsflow report --format json``
prints it as it is):

- ``generated_at``, ``since``, ``until`` (ISO 8601 UTC), ``service`` (name or None), ``hours`` (calendar
  name or None: then durations are on the operational-hours clock and ``*_wall_s`` keep wall time);
- ``totals``: ``runs``, ``succeeded``, ``failed``, ``finished``, ``success_rate``, ``objectives``,
  ``objectives_met``, ``objectives_without_data``; ``hours_open_s``: the open time of ``hours`` in the span;
- ``runbooks``: per runbook ``name``, ``runs``, ``succeeded``, ``failed``, ``other`` (canceled, partial…),
  ``check_runs``, ``success_rate`` (succeeded ÷ finished, check-mode runs excluded; None without runs),
  ``duration_p50_s``, ``duration_p95_s``, ``duration_mean_s``, ``slow_runs`` ([{``run_id``,
  ``started_at``, ``duration_s``, ``ratio``}] — runs ≥ 3× the median), ``versions`` ([{``hash``,
  ``first_run``, ``runs``, ``success_rate``, ``duration_p50_s``}] oldest first), ``objectives``
  ([{``service``, ``name``, ``kind``, ``target``, ``actual``, ``met``, ``budget_remaining``,
  ``burn_rate``, ``unit`` ("ratio" or "seconds"), ``description``, ``good``, ``total``, ``runbooks``,
  ``hours``}] — the same objective is listed under every runbook it covers and under its service:
  ``(service, name)`` identifies it; ``actual`` None means no data, and counts as met),
  ``lessons`` ({``open_reviews``, ``open_actions``}); with ``hours``, ``wall_duration_p50_s`` … too;
- ``services``: [{``name``, ``description``, ``runbooks``, ``hours``, ``objectives``: as above}];
- ``events``: ``received``, ``matched``, ``remediated_automatically``, ``automation_rate``,
  ``needed_human``, ``suppressed`` ({reason: count}), ``mttr_s``, ``time_to_start_p50_s``;
- ``backups``: [{``name``, ``last_backup_age_s``, ``last_drill_rto_s``, ``last_drill_age_s``,
  ``rpo_s``, ``overdue``}];
- ``schedule``: ``slots``, ``run_in_slot``, ``rescheduled``, ``missed``, ``skipped``, ``adherence``,
  ``entries`` ([{``entry``, ``slots``, ``run_in_slot``, ``rescheduled``, ``missed``, ``skipped``}]);
- ``operators``: [{``name``, ``runs_started``, ``approvals``, ``approval_response_mean_s``,
  ``window_overrides``, ``breaker_resets``}];
- ``trends``: [{``week`` (ISO date of the Monday), ``runs``, ``succeeded``, ``failed``,
  ``success_rate``, ``duration_p95_s``}];
- ``heatmap``: {``hosts``: [...], ``runbooks``: [...], ``failures``: [[count per runbook] per host]};
- ``distributions``: {runbook: [{``le``, ``count``}]} — run durations in histogram buckets;
- ``reviews``: [{``id``, ``title``, ``state``, ``runbooks``, ``open_actions``}], ``reviews_due``: [...].
"""
