"""Simulated tasks: MJCF assets, gymnasium envs, domain randomization and scripted experts."""
