"""Prefect-free provider clients: local models and HTTP clients, each behind a small interface."""
