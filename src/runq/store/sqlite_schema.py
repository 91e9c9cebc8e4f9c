"""The SQLite schema, as numbered migrations applied in order (PRAGMA user_version)."""

MIGRATIONS: tuple[str, ...] = (
    # 1: jobs, stream chunks, webhook outbox, deployed endpoints, counters.
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        endpoint TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        webhook TEXT,
        s3_config TEXT,
        low_priority INTEGER NOT NULL DEFAULT 0,
        execution_timeout_s REAL,
        ttl_s REAL NOT NULL,
        sync INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        worker_id TEXT,
        has_output INTEGER NOT NULL DEFAULT 0,
        output TEXT,
        error TEXT,
        retries INTEGER NOT NULL DEFAULT 0,
        stream_read INTEGER NOT NULL DEFAULT 0,
        expires_at REAL
    );
    -- rowid is implicitly the last column, so (endpoint, low_priority, rowid) is FIFO order.
    CREATE INDEX jobs_queue ON jobs (endpoint, low_priority) WHERE status = 'IN_QUEUE';
    CREATE INDEX jobs_running ON jobs (endpoint) WHERE status = 'IN_PROGRESS';
    CREATE INDEX jobs_by_status ON jobs (endpoint, status);
    CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE stream_chunks (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        output TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE webhook_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        url TEXT NOT NULL,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL
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
        value INTEGER NOT NULL,
        PRIMARY KEY (endpoint, name)
    ) WITHOUT ROWID;
    """,
    # 2: API keys, kept as the sha256 of the key (never the key); scopes as a JSON array.
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    """,
    # 3: each ended job's status, delay and execution time, kept for metrics windows after the
    # job itself is deleted (a runsync result is kept 60 s), by endpoint and end time; those
    # that ended already are copied in.
    """
    CREATE TABLE job_times (
        endpoint TEXT NOT NULL,
        finished_at REAL NOT NULL,
        job_id TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        PRIMARY KEY (endpoint, finished_at, job_id)
    ) WITHOUT ROWID;
    INSERT INTO job_times
        SELECT endpoint, finished_at, id, status, created_at, started_at FROM jobs
        WHERE finished_at IS NOT NULL
          AND status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT');
    """,
    # 4: which host caches which model (a cluster's nodes; placement prefers them).
    """
    CREATE TABLE host_models (
        host TEXT NOT NULL,
        source TEXT NOT NULL,
        PRIMARY KEY (host, source)
    ) WITHOUT ROWID;
    """,
    # 5: Idempotency-Key -> the job it made, per (owner API key id, endpoint), kept 24 h from
    # the first submission (past the job's own retention); pruned by age.
    """
    CREATE TABLE idempotency_keys (
        owner TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        job_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (owner, endpoint, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
    """,
    # 6: jobs by endpoint and status, kept by triggers in the transaction of each change, so
    # that /health, /metrics and the scheduler's tick read a few rows instead of counting a
    # million-job queue (230 ms a read); and queued jobs by their TTL deadline, so that the
    # reaper's sweep for expired ones reads only those (it scanned the whole queue each tick).
    """
    CREATE TABLE job_counts (
        endpoint TEXT NOT NULL,
        status TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (endpoint, status)
    ) WITHOUT ROWID;
    INSERT INTO job_counts SELECT endpoint, status, count(*) FROM jobs GROUP BY endpoint, status;
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_counts VALUES (NEW.endpoint, NEW.status, 1)
            ON CONFLICT (endpoint, status) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER jobs_count_update AFTER UPDATE OF status ON jobs
    WHEN OLD.status IS NOT NEW.status BEGIN
        UPDATE job_counts SET n = n - 1 WHERE endpoint = OLD.endpoint AND status = OLD.status;
        INSERT INTO job_counts VALUES (NEW.endpoint, NEW.status, 1)
            ON CONFLICT (endpoint, status) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_counts SET n = n - 1 WHERE endpoint = OLD.endpoint AND status = OLD.status;
    END;
    CREATE INDEX jobs_queue_deadline ON jobs (created_at + ttl_s) WHERE status = 'IN_QUEUE';
    """,
    # 7: jobs by endpoint and creation time (the rowid breaks ties), newest first for the
    # dashboard's recent jobs: they sorted every job of the endpoint (1.7 s for a million
    # queued, on the store's one thread).
    """
    CREATE INDEX jobs_recent ON jobs (endpoint, created_at);
    """,
)
