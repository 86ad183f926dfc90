"""The Memcached query-cache warmer: warm sets (``schemas/cache/*.toml``), ``cache warm``,
``cache copy`` between nodes and ``cache stats``."""
