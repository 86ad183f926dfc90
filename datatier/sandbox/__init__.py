"""A local sandbox of real servers (MariaDB x3, memcached, S3, MongoDB) for demo and tests."""
