-- datatier replication heartbeat (see datatier/replication/heartbeat.py).
-- The primary writes one row per source server_id every interval; a replica's lag is
-- UTC_TIMESTAMP(6) on the replica minus the replicated ts. Clock skew between the
-- primary's and the replica's hosts adds to (or subtracts from) that lag.
CREATE DATABASE IF NOT EXISTS `datatier`;
CREATE TABLE IF NOT EXISTS `datatier`.`heartbeat` (
  `server_id` INT UNSIGNED NOT NULL PRIMARY KEY,
  `ts` DATETIME(6) NOT NULL COMMENT 'UTC, written by the source',
  `beats` BIGINT UNSIGNED NOT NULL DEFAULT 0
) ENGINE=InnoDB;
