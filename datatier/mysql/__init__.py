"""MySQL/MariaDB: connections, consistent dumps and parallel loads."""
