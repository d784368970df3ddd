-- 002_retention: dense staging ids, retention and WORM bookkeeping in the
-- bundle catalog, GDPR erasure requests.

-- Staging ids without holes.  Identity values are not transactional: a
-- staging transaction rolled back by a crash or a database restart would
-- leave a hole that `verify` could not tell from a lost event.  Staging
-- transactions are already serialised by a transaction-level advisory lock
-- (store/sto_stage.c), so they take their ids from this one-row counter
-- instead, in the same transaction.
CREATE TABLE chatvault.staging_counter (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id   bigint  NOT NULL
);
INSERT INTO chatvault.staging_counter (last_id)
SELECT greatest(
    coalesce((SELECT max(staging_id) FROM chatvault.staged_events), 0),
    coalesce((SELECT max(last_sid) FROM chatvault.batches), 0),
    coalesce((SELECT max(staging_id) FROM chatvault.quarantine), 0),
    coalesce(pg_sequence_last_value(
        pg_get_serial_sequence('chatvault.staged_events', 'staging_id')::regclass), 0));

-- The catalog remembers what retention decided for each bundle.
--   retain_until: the earliest instant the bundle may be purged.  For a
--     bundle under a WORM profile it is locked when retention first sees the
--     bundle and only ever moves later, so shortening a profile afterwards
--     cannot purge it early.
--   worm: a WORM profile applied when retain_until was locked.
--   tombstone: path of the tombstone file written when the bundle was
--     purged (the hash-chain link that lets verify walk across the gap).
ALTER TABLE chatvault.batches
    ADD COLUMN retain_until timestamptz,
    ADD COLUMN worm         boolean NOT NULL DEFAULT false,
    ADD COLUMN tombstone    text;

-- GDPR erasure requests (Art. 17): every request is kept, honoured or
-- refused with the reason (a legal hold, a profile that requires keeping).
CREATE TABLE chatvault.erasures (
    erasure_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_uri        text        NOT NULL,
    reason          text        NOT NULL,
    requested_by    text        NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    state           text        NOT NULL CHECK (state IN ('honoured', 'refused')),
    refusal         text,
    redacted_staged bigint      NOT NULL DEFAULT 0
);
CREATE INDEX erasures_user ON chatvault.erasures (user_uri) WHERE state = 'honoured';

-- Administrative writers (hold add/release, retention purges, erasure)
-- serialise on this lock so a purge never races a hold that covers it.
CREATE FUNCTION chatvault.admin_lock() RETURNS void
LANGUAGE sql AS $$ SELECT pg_advisory_xact_lock(7242674137) $$;
