-- 001_staging: the compliance staging database ("mgccomp").
--
-- Everything chatvault keeps in PostgreSQL lives in schema "chatvault".
-- Applied by `chatvault migrate` inside one transaction, recorded in
-- chatvault.schema_migrations; never edit a shipped migration, add a new one.

CREATE SCHEMA IF NOT EXISTS chatvault;

-- Staged events, waiting for the adapters.  staging_id order is commit
-- order: every staging transaction takes the advisory lock
-- chatvault.staging_lock() first, so a reader never sees id N+1 committed
-- while id N is still in flight (the adapters' cursors rely on this).
CREATE TABLE chatvault.staged_events (
    staging_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      uuid        NOT NULL,
    type          text        NOT NULL,
    ts            timestamptz NOT NULL,
    room          text,
    user_uri      text        NOT NULL,
    source_server text        NOT NULL,
    source_seq    bigint      NOT NULL,
    body          text        NOT NULL,   -- canonical event JSON, byte for byte
    staged_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staged_events_event_id ON chatvault.staged_events (event_id);
CREATE INDEX staged_events_room ON chatvault.staged_events (room, staging_id);

-- Every event id ever staged (within the dedup window): the authority that
-- makes a producer retry or a replay stage an event once, even after the
-- first copy was delivered and deleted from staged_events.
CREATE TABLE chatvault.seen_events (
    event_id  uuid PRIMARY KEY,
    staged_at timestamptz NOT NULL DEFAULT now()
);

-- Queue positions, committed in the same transaction as the rows they
-- produced (exactly-once ingest).  source: "spool:<spool uuid>" or
-- "kafka:<topic>"; position: last consumed offset/position.
CREATE TABLE chatvault.ingest_positions (
    source     text   NOT NULL,
    partition  int    NOT NULL,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, partition)
);

-- Per producer: highest source.seq seen, so a jump (an event lost upstream)
-- becomes a recorded gap instead of silence.
CREATE TABLE chatvault.source_sequences (
    source_server text PRIMARY KEY,
    last_seq      bigint NOT NULL,
    events        bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE chatvault.sequence_gaps (
    gap_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_server text   NOT NULL,
    first_missing bigint NOT NULL,
    last_missing  bigint NOT NULL,
    detected_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per adapter instance: cursor, lease (one active worker across
-- processes and hosts, like mgccomp's tblComplianceState), health.
CREATE TABLE chatvault.adapter_state (
    adapter              text PRIMARY KEY,
    required             boolean NOT NULL DEFAULT true,
    cursor               bigint  NOT NULL DEFAULT 0,
    next_batch_no        bigint  NOT NULL DEFAULT 1,
    chain_head           text    NOT NULL DEFAULT '',
    lease_holder         text,
    lease_expires        timestamptz,
    last_success         timestamptz,
    last_attempt         timestamptz,
    consecutive_failures int     NOT NULL DEFAULT 0,
    next_attempt         timestamptz,
    last_error           text,
    delivered_events     bigint  NOT NULL DEFAULT 0,
    failed_events        bigint  NOT NULL DEFAULT 0
);

-- Every batch handed to an adapter, recorded (state 'pending') before the
-- adapter sees it, so a crash redelivers the same boundaries and names.
-- For the archive adapter this is the bundle catalog.
CREATE TABLE chatvault.batches (
    adapter        text   NOT NULL,
    batch_no       bigint NOT NULL,
    first_sid      bigint NOT NULL,
    last_sid       bigint NOT NULL,
    event_count    int    NOT NULL,
    min_ts         timestamptz,
    max_ts         timestamptz,
    rooms          text[] NOT NULL DEFAULT '{}',
    users          text[] NOT NULL DEFAULT '{}',
    state          text   NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'done', 'purged')),
    path           text,
    chain          text,
    chain_prev     text   NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    committed_at   timestamptz,
    purged_at      timestamptz,
    purge_reason   text,
    PRIMARY KEY (adapter, batch_no)
);
CREATE INDEX batches_time ON chatvault.batches (adapter, min_ts, max_ts);
CREATE INDEX batches_rooms ON chatvault.batches USING gin (rooms);
CREATE INDEX batches_users ON chatvault.batches USING gin (users);

-- Events that failed validation at ingest (adapter NULL) or that an adapter
-- refused permanently (adapter set): never dropped, never blocking.
CREATE TABLE chatvault.quarantine (
    qid            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    adapter        text,
    staging_id     bigint,
    event_id       uuid,
    raw            bytea  NOT NULL,
    reason         text   NOT NULL,
    source         text,
    partition      int,
    position       bigint,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    replayed_at    timestamptz,
    replay_result  text
);
CREATE INDEX quarantine_adapter ON chatvault.quarantine (adapter, staging_id);

-- Who is in which room since when (like tblComplianceParticipant).
CREATE TABLE chatvault.participants (
    room      text NOT NULL,
    user_uri  text NOT NULL,
    joined_at timestamptz NOT NULL,
    left_at   timestamptz,
    PRIMARY KEY (room, user_uri, joined_at)
);

-- Legal holds: block purging of anything they touch.
CREATE TABLE chatvault.holds (
    hold_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_uri       text,
    room           text,
    from_ts        timestamptz,
    to_ts          timestamptz,
    reason         text NOT NULL,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    released_at    timestamptz,
    released_by    text,
    release_reason text,
    CHECK (user_uri IS NOT NULL OR room IS NOT NULL)
);

-- Every administrative act, append-only (SEC 17a-4 audit-trail alternative).
CREATE TABLE chatvault.audit_log (
    audit_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    action   text NOT NULL,
    target   text,
    details  jsonb NOT NULL DEFAULT '{}'
);
CREATE FUNCTION chatvault.audit_log_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'chatvault.audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON chatvault.audit_log
    FOR EACH ROW EXECUTE FUNCTION chatvault.audit_log_immutable();

-- A late sequence number (e.g. from another Kafka partition) fills the
-- recorded gap it falls into: shrink, split or delete that gap.
CREATE FUNCTION chatvault.fill_sequence_gap(p_server text, p_seq bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g chatvault.sequence_gaps%ROWTYPE;
BEGIN
    SELECT * INTO g FROM chatvault.sequence_gaps
     WHERE source_server = p_server AND p_seq BETWEEN first_missing AND last_missing
     FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF g.first_missing = p_seq AND g.last_missing = p_seq THEN
        DELETE FROM chatvault.sequence_gaps WHERE gap_id = g.gap_id;
    ELSIF g.first_missing = p_seq THEN
        UPDATE chatvault.sequence_gaps SET first_missing = p_seq + 1 WHERE gap_id = g.gap_id;
    ELSIF g.last_missing = p_seq THEN
        UPDATE chatvault.sequence_gaps SET last_missing = p_seq - 1 WHERE gap_id = g.gap_id;
    ELSE
        UPDATE chatvault.sequence_gaps SET last_missing = p_seq - 1 WHERE gap_id = g.gap_id;
        INSERT INTO chatvault.sequence_gaps (source_server, first_missing, last_missing, detected_at)
        VALUES (p_server, p_seq + 1, g.last_missing, g.detected_at);
    END IF;
END $$;
