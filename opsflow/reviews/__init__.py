"""Lessons learned (ITIL): reviews of runs and events, with their timeline and action items.

- :mod:`opsflow.reviews.doc`: the review document and how an edit is merged into it (pure);
- :mod:`opsflow.reviews.timeline`: what happened, in order, from the records of the linked events and runs;
- :mod:`opsflow.reviews.due`: which reviews are due (failed automatic remediations, window overrides,
  missed objectives), found from the records without writing anything;
- :mod:`opsflow.reviews.render`: Markdown export, terminal text, and the lesson lines of ``plan`` / ``run``;
- :mod:`opsflow.reviews.summary`: open reviews and action items per runbook, for the KPI report.

The store keeps reviews (``opsflow.store.reviews``); ``opsflow review`` (``opsflow.cli.review``) drives them.
For the KPI report: ``summary.open_lessons_summary(store)`` (or ``store.open_lessons(runbook)`` for one
runbook) and ``due.find_due(store, since, breaches)``.
"""
