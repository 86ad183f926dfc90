-- A realistic little shop with every type that is risky to move to RethinkDB.
-- Used by scripts/demo-migrate.sh and the integration tests; load it into an empty
-- database with the stock client: `mariadb shop < schemas/rethinkdb/shop.sql`.
-- Needs MariaDB's Sequence engine (seq_1_to_N) for the generated rows.
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';  -- allows the zero dates below
SET SESSION time_zone = '+00:00';

CREATE TABLE customers (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(190) NOT NULL,                  -- utf8mb4_unicode_ci: collation-dependent
  name VARCHAR(100) NOT NULL,
  tier ENUM('free', 'pro', 'enterprise') NOT NULL DEFAULT 'free',
  flags SET('newsletter', 'beta', 'vip') NOT NULL DEFAULT '',
  signed_up DATETIME(6) NOT NULL,               -- no zone in MySQL; a few with microseconds
  last_login TIMESTAMP NULL,
  profile JSON,
  avatar BLOB,
  active BIT(1) NOT NULL DEFAULT b'1',
  UNIQUE KEY uq_email (email),
  KEY idx_tier_signed (tier, signed_up)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

INSERT INTO customers (email, name, tier, flags, signed_up, last_login, profile, avatar, active)
SELECT CONCAT('customer', seq, '@example.com'), CONCAT('Customer ', seq),
       ELT(1 + seq % 3, 'free', 'pro', 'enterprise'),
       ELT(1 + seq % 4, '', 'newsletter', 'newsletter,beta', 'vip'),
       TIMESTAMP('2024-01-01') + INTERVAL seq * 7 MINUTE
         + INTERVAL (seq % 1000) * 1000 + IF(seq % 400 = 0, 123, 0) MICROSECOND,
       IF(seq % 5 = 0, NULL, '2026-01-01 00:00:00' + INTERVAL seq SECOND),
       JSON_OBJECT('lang', ELT(1 + seq % 2, 'en', 'de'), 'visits', seq % 97,
                   'tags', JSON_ARRAY('a', seq % 7)),
       IF(seq % 3 = 0, UNHEX(REPEAT('89504E47', 8)), NULL),
       seq % 9 <> 0
FROM seq_1_to_2000;
-- a loyalty id too large for a double, tucked into a JSON document
UPDATE customers SET profile = '{"lang": "en", "loyalty_id": 12345678901234567891}' WHERE id = 42;

CREATE TABLE orders (
  order_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,   -- snowflake-style ids beyond 2^53
  customer_id INT UNSIGNED NOT NULL,
  total DECIMAL(12, 2) NOT NULL,
  tax_rate DECIMAL(30, 10) NOT NULL,
  placed_at DATETIME NOT NULL,                     -- a few legacy zero dates
  ship_window TIME,
  status_bits BIT(8) NOT NULL DEFAULT b'0',
  note TEXT,
  KEY idx_customer (customer_id),
  KEY idx_placed (placed_at)
) DEFAULT CHARSET = utf8mb4;

INSERT INTO orders
SELECT 9007199254740000 + seq * 7, 1 + seq % 2000, (seq % 100000) / 100 + 0.99,
       0.0825000000 + seq * 0.0000000001, '2025-06-01' + INTERVAL seq MINUTE,
       SEC_TO_TIME(seq % 86400), seq % 256, IF(seq % 4 = 0, NULL, CONCAT('note ', seq))
FROM seq_1_to_5000;
UPDATE orders SET placed_at = '0000-00-00 00:00:00' WHERE order_id % 997 = 0;

CREATE TABLE order_items (
  order_id BIGINT UNSIGNED NOT NULL,
  line SMALLINT UNSIGNED NOT NULL,
  sku VARCHAR(40) NOT NULL,
  qty SMALLINT NOT NULL,
  unit_price DECIMAL(10, 2) NOT NULL,
  PRIMARY KEY (order_id, line),
  KEY idx_sku (sku)
) DEFAULT CHARSET = utf8mb4;

INSERT INTO order_items
SELECT o.order_id, l.seq, CONCAT('SKU-', (o.order_id + l.seq) % 500), 1 + l.seq % 3,
       (o.order_id % 5000) / 100 + 1
FROM orders o JOIN seq_1_to_3 l WHERE o.order_id % 5 = 0;

CREATE TABLE sessions (
  token VARCHAR(200) NOT NULL PRIMARY KEY,         -- keys longer than 127 bytes
  customer_id INT UNSIGNED NOT NULL,
  expires TIMESTAMP NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_general_ci;

INSERT INTO sessions
SELECT CONCAT('s', seq, '-', REPEAT(SHA1(seq), IF(seq % 50 = 0, 4, 1))), 1 + seq % 2000,
       '2026-12-01 00:00:00' + INTERVAL seq MINUTE
FROM seq_1_to_500;

CREATE TABLE audit_log (                           -- no primary key at all
  happened DATETIME NOT NULL,
  actor VARCHAR(64) NOT NULL,
  action VARCHAR(32) NOT NULL,
  detail TEXT
) DEFAULT CHARSET = utf8mb4;

INSERT INTO audit_log
SELECT '2026-01-01' + INTERVAL seq SECOND, CONCAT('user', seq % 20), 'login', NULL
FROM seq_1_to_300;
