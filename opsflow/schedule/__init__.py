"""The operations schedule, pure half: calendars, triggers and the slots they give.

For the scheduler service (which fires runs) and the CLI (``opsflow schedule``, ``opsflow calendar``):

- :func:`opsflow.schedule.loader.load_schedules` (``validate_schedules`` for ``opsflow validate``)
  reads a ``schedules/`` directory into a :class:`~opsflow.schedule.loader.ScheduleSet`;
- :func:`opsflow.schedule.slots.next_slots` gives an entry's coming slots (run, skip, defer);
- :meth:`opsflow.schedule.calendars.Calendar.open_at` and ``windows``/``next_change`` answer calendars;
- :mod:`opsflow.schedule.policies` decides misfires and ``after:`` dependencies.

No module here reads a clock, a store or the network; only the loader reads files.
"""
