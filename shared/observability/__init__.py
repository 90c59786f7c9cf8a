"""Metrics, health endpoints and log formatting shared by every service."""
