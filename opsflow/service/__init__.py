"""The long-running opsflow service's parts beside event intake: the scheduler and its notifications.

- :class:`opsflow.service.scheduler.Scheduler` fires schedule entries through :func:`opsflow.api.execute`,
  every decision recorded (``schedule_fires``) before anything runs;
- :mod:`opsflow.service.notifications` tells the people an entry names (its ``notify:`` list).

``opsflow daemon`` runs the scheduler in a thread beside event intake.
"""
