"""Test helpers that are not fixtures: local stand-ins for services the pipeline talks to."""
