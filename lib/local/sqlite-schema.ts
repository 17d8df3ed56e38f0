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

/**
 * The read side (dashboard, queue, status, Prometheus) at a year of finished tasks: what it needs of them — how many
 * there are per state, and the latest few — is read from an index or a counter, never from a walk over all of them.
 */
const READ_SIDE_COUNTS = `
-- The newest tasks of a state are the end of an index range. Its prefix serves every lookup tasks_state served.
CREATE INDEX tasks_state_since ON tasks (state, state_since);
DROP INDEX tasks_state;

-- Tasks per state, kept by triggers inside the writing transaction, so a count is one row at 100 tasks or at 1M and
-- can never disagree with the tasks table.
CREATE TABLE task_counts (
  state TEXT    NOT NULL PRIMARY KEY,
  n     INTEGER NOT NULL CHECK (n >= 0)
) STRICT, WITHOUT ROWID;

INSERT INTO task_counts (state, n) SELECT state, count(*) FROM tasks GROUP BY state;

CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks BEGIN
  INSERT OR IGNORE INTO task_counts (state, n) VALUES (NEW.state, 0);
  UPDATE task_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TRIGGER task_counts_update AFTER UPDATE OF state ON tasks WHEN NEW.state IS NOT OLD.state BEGIN
  UPDATE task_counts SET n = n - 1 WHERE state = OLD.state;
  INSERT OR IGNORE INTO task_counts (state, n) VALUES (NEW.state, 0);
  UPDATE task_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks BEGIN
  UPDATE task_counts SET n = n - 1 WHERE state = OLD.state;
END;
`;

/**
 * Metrics over a month of a busy orchestrator read a million history rows; decoding them one by one took seconds.
 * History is append-only, so its rows are also kept in blocks of consecutive rows (by seq), each holding what metrics
 * read as packed columns (lib/local/history-blocks.ts). A window reads the few hundred blocks it overlaps plus the
 * rows not yet sealed into a block (the tail): the same events, in the same order, at a fraction of the cost. Blocks are
 * derived data — written by the store when a full block's worth of rows exists, never needed for correctness.
 */
const HISTORY_BLOCKS = `
-- Task ids as small integers for the blocks. An explicit INTEGER PRIMARY KEY, because VACUUM may renumber a plain rowid.
CREATE TABLE history_task_keys (
  key     INTEGER NOT NULL PRIMARY KEY,
  task_id TEXT    NOT NULL UNIQUE
) STRICT;

-- Rows first_seq..last_seq of history. The dictionaries name the type and state codes of the packed columns; the
-- packed columns come last so that choosing blocks by time never reads them.
CREATE TABLE history_blocks (
  last_seq  INTEGER NOT NULL PRIMARY KEY,
  first_seq INTEGER NOT NULL,
  rows      INTEGER NOT NULL CHECK (rows > 0),
  min_at    INTEGER NOT NULL,
  max_at    INTEGER NOT NULL,
  types     TEXT    NOT NULL CHECK (json_type(types) = 'array'),
  states    TEXT    NOT NULL CHECK (json_type(states) = 'array'),
  packed    BLOB    NOT NULL,
  CHECK (first_seq <= last_seq AND min_at <= max_at)
) STRICT;

-- A block must hold exactly the rows of its range. A history row written behind the store's back inside or before a
-- sealed range drops that block and every later one; those rows are the tail again until they are sealed anew.
CREATE TRIGGER history_blocks_insert AFTER INSERT ON history
WHEN NEW.seq <= (SELECT max(last_seq) FROM history_blocks) BEGIN
  DELETE FROM history_blocks WHERE last_seq >= NEW.seq;
END;

CREATE TRIGGER history_blocks_update AFTER UPDATE ON history BEGIN
  DELETE FROM history_blocks WHERE last_seq >= min(OLD.seq, NEW.seq);
END;

CREATE TRIGGER history_blocks_delete AFTER DELETE ON history BEGIN
  DELETE FROM history_blocks WHERE last_seq >= OLD.seq;
END;
`;

/**
 * Blocks also keep each row's state-machine event: several events enter the same state (interrupt and retry both
 * requeue), and the Prometheus counters, which tell runs apart by how they ended, are then read from blocks too. Blocks
 * are derived data, so the old ones are dropped rather than converted: the store seals the rows anew when it opens.
 */
const HISTORY_BLOCK_EVENTS = `
DROP TABLE history_blocks;

CREATE TABLE history_blocks (
  last_seq  INTEGER NOT NULL PRIMARY KEY,
  first_seq INTEGER NOT NULL,
  rows      INTEGER NOT NULL CHECK (rows > 0),
  min_at    INTEGER NOT NULL,
  max_at    INTEGER NOT NULL,
  types     TEXT    NOT NULL CHECK (json_type(types) = 'array'),
  states    TEXT    NOT NULL CHECK (json_type(states) = 'array'),
  events    TEXT    NOT NULL CHECK (json_type(events) = 'array'),
  packed    BLOB    NOT NULL,
  CHECK (first_seq <= last_seq AND min_at <= max_at)
) STRICT;
`;

export const MIGRATIONS: readonly string[] = [V1, READ_SIDE_COUNTS, HISTORY_BLOCKS, HISTORY_BLOCK_EVENTS];

export const SCHEMA_VERSION = MIGRATIONS.length;
