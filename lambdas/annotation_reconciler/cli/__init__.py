"""The ``annotation-reconciler`` command line (operators' entry point)."""
