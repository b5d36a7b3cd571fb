"""Packaged YAML configs: task files, robot topic maps and reality profiles."""
