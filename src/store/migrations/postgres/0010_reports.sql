-- Commissioners' reports read the referrals received in a period, and every version of their
-- Tasks (when each status was first recorded), not only the current one.
CREATE INDEX referrals_by_received ON referrals (created_at);
CREATE INDEX tasks_by_referral ON resources (referral_id) WHERE resource_type = 'Task';
