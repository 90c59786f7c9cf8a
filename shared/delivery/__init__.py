"""Delivery rules shared by dispatchers and workers: how long to wait before the next attempt, and what a
receiver's answer means."""
