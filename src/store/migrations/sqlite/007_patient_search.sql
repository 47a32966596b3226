-- `resources_by_patient` held every resource of every referral (eight for a transaction
-- Bundle), but only Task and Observation searches filter by patient (`GET /fhir/Task?patient=`,
-- `GET /fhir/Observation?patient=`); ServiceRequest searches use `referrals_by_patient`, and
-- reads find a resource by its id. Partial, like `resources_by_type`, a referral's intake adds
-- one entry here (its Task) instead of eight: fewer B-tree inserts for the writer, fewer pages
-- in each commit's WAL frames and in each checkpoint. Searches by patient name both types in
-- their condition (`resource_type IN ('Task', 'Observation')`), so that SQLite can prove the
-- index applies, and name the index (`INDEXED BY`): SQLite would otherwise prefer
-- `resources_by_type`, which reads all of a client's Tasks to find one patient's.
DROP INDEX resources_by_patient;
CREATE INDEX resources_by_patient ON resources (patient_id, resource_type, is_current)
    WHERE resource_type IN ('Task', 'Observation');
