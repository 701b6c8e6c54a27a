"""The domain, free of Prefect: schema, queries, the action catalog, text templates and the error tree."""
