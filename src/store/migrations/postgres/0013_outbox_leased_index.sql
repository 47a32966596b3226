-- When the delivery worker goes idle it asks when the next message falls due: the earliest of
-- the unleased pending messages (outbox_due) and of the leases held. This index answers the
-- second part without reading every pending message; only pending, leased rows are in it.
CREATE INDEX outbox_leased ON outbox (lease_until) WHERE state = 'pending' AND lease_until IS NOT NULL;
