"""Replication health: heartbeat writer, replica status, monitor loop, health HTTP server."""
