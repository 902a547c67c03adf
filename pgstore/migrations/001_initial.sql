-- The initial schema of authflow's PostgreSQL backend. Opaque documents
-- (flows, forwarded errors, the rest of a session or identity) are json,
-- not jsonb: json keeps an exact copy, and accepts the \u0000 escape that a
-- submitted identifier can carry into a flow, which jsonb refuses. Columns
-- hold what a statement selects, orders or updates by. Every lookup has an
-- index; expiry columns are indexed for the sweep.

-- Login flows. record is the wire flow (flow.Flow); state and expires_at
-- repeat it for the single-use completion and the sweep.
CREATE TABLE authflow_flows (
	id              uuid PRIMARY KEY,
	type            text NOT NULL,
	state           text NOT NULL,
	version         bigint NOT NULL,
	expires_at      timestamptz NOT NULL,
	csrf_token_hash text NOT NULL,
	session_id      text NOT NULL,
	method_state    json,
	record          json NOT NULL,
	updated_at      timestamptz NOT NULL
);
CREATE INDEX authflow_flows_expires_at ON authflow_flows (expires_at);

-- Errors forwarded to the error UI.
CREATE TABLE authflow_errors (
	id         uuid PRIMARY KEY,
	error      json NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);
CREATE INDEX authflow_errors_created_at ON authflow_errors (created_at);

-- Sessions. identity_id is text: the identities may live in the host's own
-- tables under ids of any form. record is the rest of session.Session.
CREATE TABLE authflow_sessions (
	id          uuid PRIMARY KEY,
	identity_id text COLLATE "C" NOT NULL,
	token_hash  text COLLATE "C" NOT NULL,
	active      boolean NOT NULL,
	issued_at   timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	record      json NOT NULL,
	CONSTRAINT authflow_sessions_token_hash UNIQUE (token_hash)
);
CREATE INDEX authflow_sessions_identity ON authflow_sessions (identity_id, issued_at DESC, id);
CREATE INDEX authflow_sessions_expires_at ON authflow_sessions (expires_at);

-- Identities. state, state_changed_at and updated_at are columns so that
-- disabling an identity and revoking its sessions is one statement.
CREATE TABLE authflow_identities (
	id               text COLLATE "C" PRIMARY KEY,
	state            text NOT NULL,
	state_changed_at timestamptz,
	updated_at       timestamptz NOT NULL,
	record           json NOT NULL
);

-- At most one credential per identity and type.
CREATE TABLE authflow_credentials (
	identity_id text COLLATE "C" NOT NULL REFERENCES authflow_identities (id) ON DELETE CASCADE,
	type        text COLLATE "C" NOT NULL,
	identifiers text[] NOT NULL,
	config      json NOT NULL,
	version     bigint NOT NULL,
	PRIMARY KEY (identity_id, type)
);

-- The (type, identifier) index that finds an identity and keeps
-- identifiers unique per type.
CREATE TABLE authflow_credential_identifiers (
	type        text COLLATE "C" NOT NULL,
	identifier  text COLLATE "C" NOT NULL,
	identity_id text COLLATE "C" NOT NULL,
	PRIMARY KEY (type, identifier),
	FOREIGN KEY (identity_id, type) REFERENCES authflow_credentials (identity_id, type) ON DELETE CASCADE
);
CREATE INDEX authflow_credential_identifiers_identity ON authflow_credential_identifiers (identity_id, type);

-- Throttling (login.Limiter). Timestamps come from the limiter's clock,
-- never from the database's. sweep_at is when a row no longer matters
-- under the limits in force when it was written.
CREATE TABLE authflow_limiter_pairs (
	identifier   text COLLATE "C" NOT NULL,
	client_ip    text COLLATE "C" NOT NULL,
	failures     integer NOT NULL,
	last_failure timestamptz NOT NULL,
	sweep_at     timestamptz NOT NULL,
	PRIMARY KEY (identifier, client_ip)
);
CREATE INDEX authflow_limiter_pairs_sweep_at ON authflow_limiter_pairs (sweep_at);

CREATE TABLE authflow_limiter_identifiers (
	identifier   text COLLATE "C" PRIMARY KEY,
	window_start timestamptz NOT NULL,
	failures     integer NOT NULL,
	sweep_at     timestamptz NOT NULL
);
CREATE INDEX authflow_limiter_identifiers_sweep_at ON authflow_limiter_identifiers (sweep_at);

CREATE TABLE authflow_limiter_trusted (
	identifier text COLLATE "C" NOT NULL,
	client_ip  text COLLATE "C" NOT NULL,
	trusted_at timestamptz NOT NULL,
	sweep_at   timestamptz NOT NULL,
	PRIMARY KEY (identifier, client_ip)
);
CREATE INDEX authflow_limiter_trusted_sweep_at ON authflow_limiter_trusted (sweep_at);
