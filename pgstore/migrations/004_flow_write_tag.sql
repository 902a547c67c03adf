-- Each write of a flow stores a random tag, so that an instance holding
-- the flow as it last wrote or read it asks for the row with that tag and
-- is sent the record only if another write came since (Store's flow
-- cache). A random tag rather than the version: a database crash may undo
-- an asynchronous write, after which another instance could write the
-- same version number with other contents. Rows from before have tag 0,
-- which no write makes.
ALTER TABLE authflow_flows ADD COLUMN write_tag bigint NOT NULL DEFAULT 0;
