"""Prefect tasks: thin wrappers that load a block, call the domain and a provider, and write results."""
