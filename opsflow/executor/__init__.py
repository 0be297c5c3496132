"""The one executor: execute(Plan) → RunResult, recording every outcome as it happens."""

from opsflow.executor.core import Executor, new_run_id
from opsflow.executor.observer import NullObserver, Observer

__all__ = ["Executor", "NullObserver", "Observer", "new_run_id"]
