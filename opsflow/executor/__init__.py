"""The one executor: execute(Plan) → RunResult, recording every outcome as it happens."""

from opsflow.executor.core import Executor, NullObserver, Observer, new_run_id

__all__ = ["Executor", "NullObserver", "Observer", "new_run_id"]
