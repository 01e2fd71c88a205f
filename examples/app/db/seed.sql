-- Representative rows for the pre-release schema, generated in SQL (no external data, MySQL and MariaDB).
CREATE TEMPORARY TABLE seed_digits (d INT NOT NULL PRIMARY KEY);
INSERT INTO seed_digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
CREATE TEMPORARY TABLE seed_seq (n INT NOT NULL PRIMARY KEY);
INSERT INTO seed_seq
  SELECT 1 + a.d + 10 * b.d + 100 * c.d + 1000 * e.d
  FROM seed_digits a, seed_digits b, seed_digits c, seed_digits e;

INSERT IGNORE INTO users (id, email, name, created_at)
  SELECT n, CONCAT('user', n, '@example.test'), CONCAT('User ', n), NOW() - INTERVAL (n % 365) DAY
  FROM seed_seq WHERE n <= 2000;

INSERT IGNORE INTO products (id, sku, title, price_cents)
  SELECT n, CONCAT('SKU-', LPAD(n, 5, '0')), CONCAT('Product ', n), 100 + (n * 37) % 9000
  FROM seed_seq WHERE n <= 200;

INSERT IGNORE INTO orders (id, user_id, status, total_cents, created_at)
  SELECT n, 1 + (n * 7) % 2000, ELT(1 + n % 3, 'new', 'paid', 'shipped'), 500 + (n * 13) % 20000,
         NOW() - INTERVAL (n % 90) DAY
  FROM seed_seq;

INSERT IGNORE INTO order_items (order_id, product_id, quantity)
  SELECT n, 1 + (n * 11) % 200, 1 + n % 4 FROM seed_seq;

DROP TEMPORARY TABLE seed_seq;
DROP TEMPORARY TABLE seed_digits;
