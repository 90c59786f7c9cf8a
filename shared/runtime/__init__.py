"""How a service's loops run: periodic steps until stop, and task groups that fail as one."""
