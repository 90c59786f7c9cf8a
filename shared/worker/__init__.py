"""A small library for task workers: register functions by task name, then run them as jobs fire.

Users import it as `scheduler.worker` (the public package); this is where it lives beside the services.

    from scheduler.worker import Worker

    worker = Worker("reports")

    @worker.task("tasks.generate_report")
    async def generate_report(*args, **kwargs):
        return {"pages": 3}

Run it with `scheduler worker --app mymodule:worker`, or from code with `await worker.run(settings, stop)`.
"""

from shared.worker.app import Worker

__all__ = ["Worker"]
