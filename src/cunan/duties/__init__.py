"""Scheduled duties: departures and deadlines, not-seen reconciliation, retention, counters."""
