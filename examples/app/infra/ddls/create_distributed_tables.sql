-- Canonical schema release: outbox + refresh_tokens (the runbook's infra/ddls/create_distributed_tables.sql).
-- Idempotent: every statement can run again without error and without changing anything.

CREATE TABLE IF NOT EXISTS outbox (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  aggregate_type VARCHAR(64)    NOT NULL,
  aggregate_id  VARCHAR(64)     NOT NULL,
  event_type    VARCHAR(128)    NOT NULL,
  payload       LONGTEXT        NOT NULL,
  status        ENUM('pending','delivered','failed','dead') NOT NULL DEFAULT 'pending',
  attempts      INT UNSIGNED    NOT NULL DEFAULT 0,
  last_error    VARCHAR(1024)   NULL,
  created_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  available_at  DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  delivered_at  DATETIME(3)     NULL,
  PRIMARY KEY (id),
  KEY idx_outbox_status_created (status, created_at),
  KEY idx_outbox_delivered (delivered_at),
  KEY idx_outbox_aggregate (aggregate_type, aggregate_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS refresh_tokens (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  user_id     BIGINT UNSIGNED NOT NULL,
  token_hash  CHAR(64)        NOT NULL,
  issued_at   DATETIME        NOT NULL DEFAULT CURRENT_TIMESTAMP,
  expires_at  DATETIME        NOT NULL,
  revoked     TINYINT(1)      NOT NULL DEFAULT 0,
  revoked_at  DATETIME        NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_refresh_tokens_hash (token_hash),
  KEY idx_refresh_tokens_user (user_id),
  KEY idx_refresh_tokens_revoked (revoked, revoked_at),
  CONSTRAINT fk_refresh_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE OR REPLACE VIEW outbox_pending_summary AS
  SELECT status, COUNT(*) AS events, MIN(created_at) AS oldest
  FROM outbox
  GROUP BY status;
