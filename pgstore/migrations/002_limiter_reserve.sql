-- Throttling decides and counts in one atomic step (login.Limiter.Reserve):
-- an attempt that may proceed is counted as a failure at once, so that
-- concurrent guesses get through no more often than the same guesses one
-- after another. Each function runs as one statement, hence one round trip
-- and one transaction, and computes exactly what login.MemoryLimiter does
-- under its mutex; times and limits come from the caller (Limits.Now,
-- never now()).
--
-- A row with no failures whose time is the Unix epoch is a placeholder: it
-- exists only so that it can be locked, and means the same as no row. A
-- pair without failures has nothing to remember, and an identifier window
-- that started in 1970 is over for any clock later than 1970 plus the
-- window. (The epoch, not -infinity, so that every client can read the
-- row.) Its sweep_at is its creation time, so Store.Sweep may remove it at
-- once.
--
-- Locks are taken in one order everywhere: the pair's row, then the
-- identifier's row. Limiter.Success (a statement in Go) keeps that order
-- and then writes the trusted address's row, which these functions only
-- read.

-- authflow_limiter_reserve returns 0 when an attempt on (p_identifier,
-- p_client_ip) may proceed at p_now, having counted it as a failure of the
-- pair and of the identifier's window; otherwise it changes nothing and
-- returns the wait in microseconds. The delay imposed after k failures of
-- a pair is 0 for k < p_free_failures and p_delays[least(k -
-- p_free_failures, n - 1) + 1] otherwise, where n is the length of
-- p_delays: the caller computes the delays, so the doubling rule is written
-- once, in Go. p_pair_sweep is how long after its last failure a pair's row
-- can matter at most (the window plus the longest delay).
CREATE FUNCTION authflow_limiter_reserve(
	p_identifier          text,
	p_client_ip           text,
	p_now                 timestamptz,
	p_free_failures       integer,
	p_delays              interval[],
	p_window              interval,
	p_pair_sweep          interval,
	p_identifier_failures integer,
	p_identifier_window   interval,
	p_trust_for           interval
) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	pair_failures integer;
	pair_last     timestamptz;
	pair_delay    interval;
	win_start     timestamptz;
	win_failures  integer;
	trusted       timestamptz;
	proceed_at    timestamptz := p_now;
BEGIN
	-- Lock the pair's row, creating a placeholder when there is none. In
	-- READ COMMITTED each statement sees the latest committed rows, and
	-- FOR UPDATE waits for a concurrent writer and then returns the row
	-- as that writer left it, or nothing if it was deleted (a release, a
	-- sweep), in which case the loop creates it again.
	LOOP
		SELECT failures, last_failure INTO pair_failures, pair_last
		FROM authflow_limiter_pairs
		WHERE identifier = p_identifier AND client_ip = p_client_ip
		FOR UPDATE;
		EXIT WHEN FOUND;
		INSERT INTO authflow_limiter_pairs (identifier, client_ip, failures, last_failure, sweep_at)
		VALUES (p_identifier, p_client_ip, 0, timestamptz '1970-01-01 00:00:00+00', p_now)
		ON CONFLICT (identifier, client_ip) DO NOTHING;
	END LOOP;

	-- Then the identifier's row, the same way.
	LOOP
		SELECT window_start, failures INTO win_start, win_failures
		FROM authflow_limiter_identifiers
		WHERE identifier = p_identifier
		FOR UPDATE;
		EXIT WHEN FOUND;
		INSERT INTO authflow_limiter_identifiers (identifier, window_start, failures, sweep_at)
		VALUES (p_identifier, timestamptz '1970-01-01 00:00:00+00', 0, p_now)
		ON CONFLICT (identifier) DO NOTHING;
	END LOOP;

	-- The pair's delay, and whether its failures are forgotten: older than
	-- the window plus the delay they imposed.
	IF pair_failures < p_free_failures THEN
		pair_delay := interval '0';
	ELSE
		pair_delay := p_delays[least(pair_failures - p_free_failures, cardinality(p_delays) - 1) + 1];
	END IF;
	IF pair_failures <= 0 OR pair_last + (p_window + pair_delay) <= p_now THEN
		pair_failures := 0;
	ELSIF p_now < pair_last + pair_delay THEN
		proceed_at := pair_last + pair_delay;
	END IF;

	-- The per-identifier cap, which addresses trusted for the identifier
	-- are exempt from.
	SELECT trusted_at INTO trusted
	FROM authflow_limiter_trusted
	WHERE identifier = p_identifier AND client_ip = p_client_ip;
	IF NOT (FOUND AND p_now < trusted + p_trust_for)
		AND p_now < win_start + p_identifier_window
		AND win_failures >= p_identifier_failures THEN
		proceed_at := greatest(proceed_at, win_start + p_identifier_window);
	END IF;

	IF proceed_at > p_now THEN
		RETURN ceil(extract(epoch FROM (proceed_at - p_now)) * 1000000)::bigint;
	END IF;

	-- The attempt proceeds: it is a failure until the caller settles it.
	UPDATE authflow_limiter_pairs SET
		failures = pair_failures + 1,
		last_failure = greatest(last_failure, p_now),
		sweep_at = greatest(sweep_at, p_now + p_pair_sweep)
	WHERE identifier = p_identifier AND client_ip = p_client_ip;
	IF win_start + p_identifier_window <= p_now THEN
		UPDATE authflow_limiter_identifiers SET
			window_start = p_now, failures = 1, sweep_at = p_now + p_identifier_window
		WHERE identifier = p_identifier;
	ELSE
		UPDATE authflow_limiter_identifiers SET failures = failures + 1
		WHERE identifier = p_identifier;
	END IF;
	RETURN 0;
END
$$;

-- authflow_limiter_release takes back one reservation of (p_identifier,
-- p_client_ip): one failure fewer for the pair (its row goes when none is
-- left; the time of its last failure stays) and for the identifier's
-- window, if it has any.
CREATE FUNCTION authflow_limiter_release(p_identifier text, p_client_ip text) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	left_over integer;
BEGIN
	UPDATE authflow_limiter_pairs SET failures = failures - 1
	WHERE identifier = p_identifier AND client_ip = p_client_ip AND failures > 0
	RETURNING failures INTO left_over;
	IF FOUND AND left_over = 0 THEN
		-- The row is locked by the update above until the function's
		-- statement commits, so it is still the one just written.
		DELETE FROM authflow_limiter_pairs
		WHERE identifier = p_identifier AND client_ip = p_client_ip;
	END IF;
	UPDATE authflow_limiter_identifiers SET failures = failures - 1
	WHERE identifier = p_identifier AND failures > 0;
END
$$;
