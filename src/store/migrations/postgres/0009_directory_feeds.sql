-- The last poll of each `[[directory.feeds]]` feed: when, what came of it (imported, not
-- modified, failed), the HTTP status, the counts and faults for the admin API, the validators
-- (ETag, Last-Modified) the next poll sends, and when that poll is due. One row per feed,
-- replaced by each poll.
CREATE TABLE directory_feeds (
    feed          TEXT PRIMARY KEY,
    polled_at     TIMESTAMPTZ NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('imported', 'not_modified', 'failed')),
    http_status   INTEGER,
    imported      INTEGER NOT NULL,
    skipped       INTEGER NOT NULL,
    withdrawn     INTEGER NOT NULL,
    faults        TEXT NOT NULL,
    etag          TEXT,
    last_modified TEXT,
    next_poll_at  TIMESTAMPTZ NOT NULL
);
