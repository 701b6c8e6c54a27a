"""Prefect flows: one flow per file, each orchestrating (batching, mapping, progress, status), never computing."""
