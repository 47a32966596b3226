-- Commissioners sign in to the reports page: role `commissioner`, bound to a `[[commissioners]]`
-- id, with no organisation.
ALTER TABLE accounts ADD COLUMN commissioner_id TEXT;
ALTER TABLE accounts DROP CONSTRAINT accounts_role_check;
ALTER TABLE accounts DROP CONSTRAINT accounts_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_role_check
    CHECK (role IN ('staff', 'manager', 'operator', 'commissioner'));
ALTER TABLE accounts ADD CONSTRAINT accounts_vcs_check
    CHECK ((role IN ('staff', 'manager')) = (vcs_id IS NOT NULL));
ALTER TABLE accounts ADD CONSTRAINT accounts_commissioner_check
    CHECK ((role = 'commissioner') = (commissioner_id IS NOT NULL));
