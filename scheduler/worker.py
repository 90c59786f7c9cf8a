"""The task-worker library, for the functions jobs with a `task_name` run: what a worker author imports.

    from scheduler.worker import Worker

    worker = Worker("reports", concurrency=8, timeout=300)

    @worker.task("tasks.generate_report")
    async def generate_report(*args, **kwargs):
        return {"pages": 3}  # stored as the execution's result

Run it with `scheduler worker --app reports:worker`, or from code with
`await worker.run(load_settings(), stop_event)`.

- `Worker`: registers task functions (`@worker.task(name, timeout=...)`, sync or async) and runs them as their jobs
  fire, `concurrency` at a time in this process, recording each run as an execution.
- `TaskFunction`: one registered task, as `worker.tasks[name]` holds it.
- `load_settings`, `Settings`, `SettingsError`: the configuration `Worker.run` takes (NATS_URL, SCHEDULER_NAMESPACE,
  ...; see docs/configuration.md).

This is the public face of `shared.worker`, which the services share; import it from here.
"""

from shared.settings import Settings, SettingsError, load_settings
from shared.worker import Worker
from shared.worker.app import TaskFunction

__all__ = ["Settings", "SettingsError", "TaskFunction", "Worker", "load_settings"]
