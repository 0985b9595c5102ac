"""Progress of a long benchmark that reads well both at a terminal and in a log.

Rich draws its bars live only at a terminal; sent to a file (`> run.log 2>&1`, `nohup`), it
writes them once, at exit, so a run of hours shows nothing until it ends. `Phases` is rich's
Progress that, away from a terminal, also prints a plain line as each bar fills."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import Progress, TaskID


class Phases(Progress):
    def __init__(self, console: Console):
        super().__init__(console=console)
        self._began = time.monotonic()
        self._told: set[TaskID] = set()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._tell(task_id)

    def update(self, task_id: TaskID, **changes) -> None:
        super().update(task_id, **changes)
        self._tell(task_id)

    def _tell(self, task_id: TaskID) -> None:
        task = next(t for t in self.tasks if t.id == task_id)
        if self.console.is_terminal or not task.finished or task_id in self._told:
            return
        self._told.add(task_id)
        self.console.print(f"{time.monotonic() - self._began:.0f} s: {task.description} ({task.completed:.0f}) done")
        self.console.file.flush()
