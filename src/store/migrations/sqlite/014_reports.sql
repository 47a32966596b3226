-- Commissioners' reports read the referrals received in a period: by the time of receipt.
CREATE INDEX referrals_by_received ON referrals (created_at);
