-- 003_sequence_gap_index: late sequence numbers (several Kafka partitions
-- carry one producer's events) look up the gap they fill by server and
-- range; without this index every lookup scanned the whole table.
CREATE INDEX sequence_gaps_server ON chatvault.sequence_gaps (source_server, first_missing);
