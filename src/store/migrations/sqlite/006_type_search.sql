-- Searches for Tasks and Observations by type alone (a GP system polling `GET /fhir/Task` or
-- `GET /fhir/Observation` for its referrals' outcomes) scanned every resource after
-- `lean_intake` keyed resources by id first. This index serves them in page order
-- (`ORDER BY last_updated, id`), and holds every column the search's condition reads (`code`
-- and `is_current` too), so the search's total is counted from the index alone. It is partial:
-- only current Tasks and Observations are in it, so a referral's intake adds one entry (its
-- Task), not one for each of its resources. Searches name both types in their condition
-- (`resource_type IN ('Task', 'Observation')`) so that SQLite can prove the index applies.
CREATE INDEX resources_by_type
    ON resources (client_id, resource_type, last_updated, id, code, is_current)
    WHERE is_current = 1 AND resource_type IN ('Task', 'Observation');
