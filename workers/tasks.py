"""Pipeline tasks (feedback flush). Other task modules are listed in ``workers.app.TASK_MODULES``."""
