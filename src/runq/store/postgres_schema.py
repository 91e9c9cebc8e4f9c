"""The PostgreSQL schema, as numbered migrations applied in order (table `runq_schema`).

The same tables as the SQLite store (`sqlite_schema.py`), with PostgreSQL types: times are
epoch seconds in DOUBLE PRECISION (as the SQLite store keeps them, so the two agree to the
bit), JSON is kept as TEXT (an input comes back byte for byte as it was sent, key order and
big integers included), and `seq` gives the FIFO order SQLite's rowid gives.
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: jobs, stream chunks, webhook outbox, deployed endpoints, counters, ended jobs' times
    # (kept past the job for metrics windows), API keys.
    """
    CREATE TABLE jobs (
        seq BIGSERIAL NOT NULL,
        id TEXT PRIMARY KEY,
        endpoint TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        webhook TEXT,
        s3_config TEXT,
        low_priority BOOLEAN NOT NULL DEFAULT FALSE,
        execution_timeout_s DOUBLE PRECISION,
        ttl_s DOUBLE PRECISION NOT NULL,
        sync BOOLEAN NOT NULL DEFAULT FALSE,
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        worker_id TEXT,
        has_output BOOLEAN NOT NULL DEFAULT FALSE,
        output TEXT,
        error TEXT,
        retries INTEGER NOT NULL DEFAULT 0,
        stream_read INTEGER NOT NULL DEFAULT 0,
        expires_at DOUBLE PRECISION
    );
    CREATE INDEX jobs_queue ON jobs (endpoint, low_priority, seq) WHERE status = 'IN_QUEUE';
    CREATE INDEX jobs_running ON jobs (endpoint) WHERE status = 'IN_PROGRESS';
    CREATE INDEX jobs_by_status ON jobs (endpoint, status);
    CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX jobs_finished ON jobs (endpoint, finished_at);
    CREATE TABLE stream_chunks (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        output TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE webhook_outbox (
        id BIGSERIAL PRIMARY KEY,
        job_id TEXT NOT NULL,
        url TEXT NOT NULL,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX webhook_due ON webhook_outbox (next_at);
    CREATE TABLE endpoints (
        name TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        toml TEXT NOT NULL
    );
    CREATE TABLE counters (
        endpoint TEXT NOT NULL,
        name TEXT NOT NULL,
        value BIGINT NOT NULL,
        PRIMARY KEY (endpoint, name)
    );
    CREATE TABLE job_times (
        endpoint TEXT NOT NULL,
        finished_at DOUBLE PRECISION NOT NULL,
        job_id TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        PRIMARY KEY (endpoint, finished_at, job_id)
    );
    CREATE INDEX job_times_age ON job_times (finished_at);
    CREATE TABLE runq_leader (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        url TEXT NOT NULL,
        since DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE api_keys (
        seq BIGSERIAL NOT NULL,
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    );
    """,
    # 2: which host caches which model (a cluster's nodes; placement prefers them).
    """
    CREATE TABLE host_models (
        host TEXT NOT NULL,
        source TEXT NOT NULL,
        PRIMARY KEY (host, source)
    );
    """,
    # 3: Idempotency-Key -> the job it made, per (owner API key id, endpoint), kept 24 h from
    # the first submission (past the job's own retention); pruned by age.
    """
    CREATE TABLE idempotency_keys (
        owner TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        job_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (owner, endpoint, key)
    );
    CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
    """,
    # 4: jobs by endpoint and status, kept by statement triggers in the transaction of each
    # change (as in sqlite_schema.py, migration 6), so that /health, /metrics and the
    # scheduler's tick read a few rows instead of counting a million-job queue; and queued
    # jobs by TTL deadline, for the reaper's sweep. Each statement applies its changes in
    # (endpoint, status) order, so that two transactions lock count rows in one order (no
    # deadlock between a take and a finish that takes the next job).
    """
    LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;
    CREATE TABLE job_counts (
        endpoint TEXT NOT NULL,
        status TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (endpoint, status)
    );
    INSERT INTO job_counts SELECT endpoint, status, count(*) FROM jobs GROUP BY endpoint, status;
    CREATE FUNCTION runq_count_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO job_counts (endpoint, status, n)
                SELECT endpoint, status, count(*) FROM new_rows GROUP BY endpoint, status
                ORDER BY endpoint, status
                ON CONFLICT (endpoint, status) DO UPDATE SET n = job_counts.n + excluded.n;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO job_counts (endpoint, status, n)
                SELECT endpoint, status, -count(*) FROM old_rows GROUP BY endpoint, status
                ORDER BY endpoint, status
                ON CONFLICT (endpoint, status) DO UPDATE SET n = job_counts.n + excluded.n;
        ELSE
            INSERT INTO job_counts (endpoint, status, n)
                SELECT endpoint, status, sum(delta) FROM (
                    SELECT o.endpoint, o.status, -1 AS delta
                    FROM old_rows o JOIN new_rows c ON c.id = o.id WHERE o.status <> c.status
                    UNION ALL
                    SELECT c.endpoint, c.status, 1
                    FROM old_rows o JOIN new_rows c ON c.id = o.id WHERE o.status <> c.status
                ) AS changes
                GROUP BY endpoint, status HAVING sum(delta) <> 0
                ORDER BY endpoint, status
                ON CONFLICT (endpoint, status) DO UPDATE SET n = job_counts.n + excluded.n;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION runq_count_jobs();
    CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION runq_count_jobs();
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION runq_count_jobs();
    CREATE INDEX jobs_queue_deadline ON jobs ((created_at + ttl_s)) WHERE status = 'IN_QUEUE';
    """,
    # 5: the counts spread over 16 slots per (endpoint, status), one per database backend
    # (`runq_slot()`): every take, finish and enqueue changes a count, and a count row stays
    # locked until its transaction commits, so with one row per (endpoint, status) every
    # worker's finish waited for the one before it (8 workers: 20 ms a finish, waiting). A
    # backend runs one transaction at a time, so transactions on different backends no longer
    # share a row; readers sum the slots. `counters` likewise, and the trigger now also counts
    # the jobs that end and keeps their times (the store did, a round trip each per finish).
    # And the indexes that grew with the queue and served nothing: jobs by (endpoint, status)
    # is replaced by jobs by (endpoint, created_at, seq), which the dashboard's recent jobs
    # read (a sequential scan of a million-job table before), and ended jobs by finish time no
    # longer index the NULL finish time of every queued job.
    """
    LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;
    CREATE FUNCTION runq_slot() RETURNS SMALLINT LANGUAGE sql STABLE PARALLEL RESTRICTED
        AS 'SELECT (pg_backend_pid() % 16)::smallint';
    ALTER TABLE job_counts ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0;
    ALTER TABLE job_counts DROP CONSTRAINT job_counts_pkey;
    ALTER TABLE job_counts ADD PRIMARY KEY (endpoint, status, slot);
    ALTER TABLE counters ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0;
    ALTER TABLE counters DROP CONSTRAINT counters_pkey;
    ALTER TABLE counters ADD PRIMARY KEY (endpoint, name, slot);
    CREATE OR REPLACE FUNCTION runq_count_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        mine SMALLINT := runq_slot();
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO job_counts (endpoint, status, slot, n)
                SELECT endpoint, status, mine, count(*) FROM new_rows GROUP BY endpoint, status
                ORDER BY endpoint, status
                ON CONFLICT (endpoint, status, slot) DO UPDATE SET n = job_counts.n + excluded.n;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO job_counts (endpoint, status, slot, n)
                SELECT endpoint, status, mine, -count(*) FROM old_rows GROUP BY endpoint, status
                ORDER BY endpoint, status
                ON CONFLICT (endpoint, status, slot) DO UPDATE SET n = job_counts.n + excluded.n;
        ELSE
            INSERT INTO job_counts (endpoint, status, slot, n)
                SELECT endpoint, status, mine, sum(delta) FROM (
                    SELECT o.endpoint, o.status, -1 AS delta
                    FROM old_rows o JOIN new_rows c ON c.id = o.id WHERE o.status <> c.status
                    UNION ALL
                    SELECT c.endpoint, c.status, 1
                    FROM old_rows o JOIN new_rows c ON c.id = o.id WHERE o.status <> c.status
                ) AS changes
                GROUP BY endpoint, status HAVING sum(delta) <> 0
                ORDER BY endpoint, status
                ON CONFLICT (endpoint, status, slot) DO UPDATE SET n = job_counts.n + excluded.n;
            -- Jobs that just ended: counted by final status for ever (retention deletes jobs,
            -- not these counts), and their times kept for metrics windows.
            INSERT INTO counters (endpoint, name, slot, value)
                SELECT c.endpoint, 'ended:' || c.status, mine, count(*)
                FROM old_rows o JOIN new_rows c ON c.id = o.id
                WHERE o.status <> c.status
                    AND c.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT')
                GROUP BY c.endpoint, c.status
                ORDER BY c.endpoint, c.status
                ON CONFLICT (endpoint, name, slot) DO UPDATE
                    SET value = counters.value + excluded.value;
            INSERT INTO job_times (endpoint, finished_at, job_id, status, created_at, started_at)
                SELECT c.endpoint, c.finished_at, c.id, c.status, c.created_at, c.started_at
                FROM old_rows o JOIN new_rows c ON c.id = o.id
                WHERE o.status <> c.status
                    AND c.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT')
                ON CONFLICT DO NOTHING;
        END IF;
        RETURN NULL;
    END $$;
    DROP INDEX jobs_by_status;
    DROP INDEX jobs_finished;
    CREATE INDEX jobs_finished ON jobs (endpoint, finished_at) WHERE finished_at IS NOT NULL;
    CREATE INDEX jobs_recent ON jobs (endpoint, created_at, seq);
    """,
)
