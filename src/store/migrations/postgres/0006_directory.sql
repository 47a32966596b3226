-- The service directory (Open Referral UK feeds): services by their feed's id, never deleted
-- (referrals point at them), with the feed's JSON (the search index is rebuilt from it) and
-- their FHIR HealthcareService; their organisations (with the identifiers routing matches) and
-- locations. `import_id` names the import that last carried a service: a full import withdraws
-- the services of its feed that it did not carry.
CREATE TABLE directory_services (
    id              TEXT PRIMARY KEY,
    feed            TEXT NOT NULL,
    name            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'inactive', 'withdrawn')),
    organization_id TEXT,
    source          TEXT NOT NULL,
    content         TEXT NOT NULL,
    import_id       TEXT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX directory_services_by_feed ON directory_services (feed, import_id);

CREATE TABLE directory_organizations (
    id         TEXT PRIMARY KEY,
    content    TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE directory_organization_identifiers (
    organization_id TEXT NOT NULL REFERENCES directory_organizations (id),
    system          TEXT NOT NULL,
    value           TEXT NOT NULL,
    PRIMARY KEY (organization_id, system, value)
);
CREATE INDEX directory_organization_identifiers_by_value
    ON directory_organization_identifiers (system, value);

CREATE TABLE directory_locations (
    id         TEXT PRIMARY KEY,
    content    TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
