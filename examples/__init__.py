"""Programs that use the scheduler from outside, as its users' own services would."""
