"""Point-in-time recovery for MySQL: continuous binlog archiving, its index, and replay."""
