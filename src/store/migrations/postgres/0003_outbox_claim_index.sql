-- The claim passes over a message while an earlier message of the same referral and target is
-- still pending. Without an index led by the referral, that check was planned over
-- outbox_by_vcs (vcs_id, state) and scanned every pending message of the organisation for each
-- candidate: a backlog of thousands made each claim take seconds. Only pending rows matter.
CREATE INDEX outbox_pending_by_referral ON outbox (referral_id, target_kind, vcs_id, sequence)
    WHERE state = 'pending';
