"""Runbooks: YAML files with positions → validated, typed models."""
