-- Ceremonies: the server-side half of a WebAuthn enrolment between its
-- begin and its finish (login.CeremonyStore, kept by CeremonyStore), so
-- that an enrolment begun on one instance can be finished on another. key
-- is the method's key for the session's enrolment; data is opaque to the
-- database. A take is one DELETE ... RETURNING, so of concurrent takes at
-- most one gets the row. Expired rows are refused when taken and removed
-- by Store.Sweep through the expiry index.
CREATE TABLE authflow_ceremonies (
	key        text COLLATE "C" PRIMARY KEY,
	data       bytea NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX authflow_ceremonies_expires_at ON authflow_ceremonies (expires_at);
