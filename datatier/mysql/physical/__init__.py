"""Physical backups of MariaDB with mariadb-backup: full and incremental, restored into a
datadir (see :mod:`datatier.mysql.physical.engine` and :mod:`datatier.mysql.physical.restore`)."""
