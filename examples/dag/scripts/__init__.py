"""Scripts of the DAG examples (run as files by their YAML tasks)."""
