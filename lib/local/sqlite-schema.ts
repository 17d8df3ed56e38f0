/**
 * The schema of the local task database, as migrations: `MIGRATIONS[i]` takes a file from version i to i + 1 (kept in
 * `PRAGMA user_version`). A shipped migration is never edited — a change to the schema is a new entry, so every file in
 * the wild reaches the same schema by the same steps.
 *
 * Times are INTEGER epoch milliseconds. Tables are STRICT so a wrongly typed value fails loudly instead of being
 * coerced. Durations are REAL: a run's wall time may be fractional and must read back as written.
 */
const V1 = `
CREATE TABLE tasks (
  id                 TEXT    NOT NULL PRIMARY KEY,
  title              TEXT    NOT NULL,
  type               TEXT    NOT NULL,
  sender             TEXT,
  urgency            INTEGER NOT NULL CHECK (urgency BETWEEN 1 AND 5),
  deadline           INTEGER,
  created            INTEGER NOT NULL,
  approval_required  INTEGER NOT NULL CHECK (approval_required IN (0, 1)),
  approval_reasons   TEXT    NOT NULL CHECK (json_type(approval_reasons) = 'array'),
  state              TEXT    NOT NULL,
  approval_by        TEXT,
  approval_at        INTEGER,
  attempts           INTEGER NOT NULL CHECK (attempts >= 0),
  retry_at           INTEGER,
  last_error_class   TEXT,
  last_error_message TEXT,
  reason             TEXT,
  state_since        INTEGER NOT NULL,
  cost_usd           REAL    NOT NULL,
  lease_owner        TEXT,
  lease_pid          INTEGER,
  lease_expires_at   INTEGER,
  version            INTEGER NOT NULL CHECK (version >= 1),
  -- The parts of one value are stored together or not at all.
  CHECK ((approval_by IS NULL) = (approval_at IS NULL)),
  CHECK ((last_error_class IS NULL) = (last_error_message IS NULL)),
  CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL)),
  CHECK (lease_owner IS NOT NULL OR lease_pid IS NULL)
) STRICT;

-- The scheduler and the dashboard select by state; states are few, tasks many.
CREATE INDEX tasks_state ON tasks (state);

CREATE TABLE history (
  seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  task_id     TEXT    NOT NULL REFERENCES tasks (id),
  task_type   TEXT    NOT NULL,
  from_state  TEXT    NOT NULL,
  to_state    TEXT    NOT NULL,
  event       TEXT    NOT NULL,
  at          INTEGER NOT NULL,
  attempt     INTEGER NOT NULL,
  duration_ms REAL,
  cost_usd    REAL,
  error_class TEXT
) STRICT;

-- Metrics and health read history by time window.
CREATE INDEX history_at ON history (at);

CREATE TABLE runs (
  task_id     TEXT    NOT NULL REFERENCES tasks (id),
  attempt     INTEGER NOT NULL,
  kind        TEXT    NOT NULL CHECK (kind IN ('plan', 'execute')),
  started_at  INTEGER NOT NULL,
  ended_at    INTEGER NOT NULL,
  ok          INTEGER NOT NULL CHECK (ok IN (0, 1)),
  error_class TEXT,
  exit_code   INTEGER,
  duration_ms REAL    NOT NULL,
  cost_usd    REAL    NOT NULL,
  num_turns   INTEGER,
  session_id  TEXT,
  log_path    TEXT,
  PRIMARY KEY (task_id, attempt, kind)
) STRICT, WITHOUT ROWID;

-- One row: the emergency stop and the orchestrator's heartbeat, shared by every process on the file.
CREATE TABLE control (
  id              INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
  stop_requested  INTEGER NOT NULL DEFAULT 0 CHECK (stop_requested IN (0, 1)),
  stop_reason     TEXT,
  stop_changed_at INTEGER,
  heartbeat_at    INTEGER,
  heartbeat_owner TEXT
) STRICT;

INSERT INTO control (id) VALUES (1);
`;

export const MIGRATIONS: readonly string[] = [V1];

export const SCHEMA_VERSION = MIGRATIONS.length;
