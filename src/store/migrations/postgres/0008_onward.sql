-- Onward referrals: a link worker's referral to a service of the directory is a referral of its
-- own, based on the referral the link worker received. `ServiceRequest?based-on=` and
-- `Task?part-of=` find the children of a referral by this column.
ALTER TABLE referrals ADD COLUMN based_on TEXT REFERENCES referrals (id);
CREATE INDEX referrals_by_parent ON referrals (based_on) WHERE based_on IS NOT NULL;
