"""MariaDB binary logs: the event format, the replication-protocol reader, replay as SQL."""
