-- Each write of a flow stores a random tag, so that an instance holding
-- the flow as it last wrote or read it asks for the row with that tag and
-- version, and is sent the record only if another write came since
-- (Store's flow cache). The version alone would not do: a database crash
-- may undo an asynchronous write, after which another instance could
-- write the same version number with other contents. The tag alone would
-- not do either: an older pgstore, during a rolling upgrade, leaves it as
-- it was, but increments the version. Rows from before have tag 0, which
-- no write makes.
ALTER TABLE authflow_flows ADD COLUMN write_tag bigint NOT NULL DEFAULT 0;
