"""The parts of ``cleanup-stale-annotations``: its report (``report``), how it is printed (``render``) and
what it does (``run``); the click command is ``annotation_reconciler.cleanup_stale_annotations``."""
